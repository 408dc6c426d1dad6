import { createHash } from 'node:crypto';
import { createNobleProvider } from '../crypto/noble.ts';
import { toB64u } from '../encoding/base64url.ts';
import { toHex } from '../encoding/bytes.ts';
import { createHasher } from './merkle.ts';
import { MemoryTree } from './memory-tree.ts';
import { signCheckpoint, checkpointBody } from './checkpoint.ts';
import { cosignatureLine } from './cosignature.ts';
import { leafBytes, type AuditEvent } from './event.ts';
import { sampleEvent } from './testing.ts';
import { typedVerifierKeyString, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519 } from './note.ts';

/**
 * Golden vectors for the audit log (contracts/vectors/audit.json, spec section 8): ten fixed
 * events, their leaf bytes and hashes, every root, some inclusion and consistency proofs, a
 * signed checkpoint and a cosigned one, from fixed seeds. Re-verified by golden.test.ts here
 * with both providers (recomputed, not just compared).
 */
export const GOLDEN_ORIGIN = 'vectors.talos.dev/audit';
export const GOLDEN_WITNESS = 'vectors.talos.dev/witness';
export const GOLDEN_COSIGN_TIME = 1_767_225_600;
const seed = (label: string) => new Uint8Array(createHash('sha256').update(label).digest());
export const goldenLogSeed = () => seed('talos/v1/audit-vectors/log');
export const goldenWitnessSeed = () => seed('talos/v1/audit-vectors/witness');
export const GOLDEN_INCLUSION: [number, number][] = [[0, 1], [0, 10], [5, 10], [9, 10], [6, 7], [3, 8]];
export const GOLDEN_CONSISTENCY: [number, number][] = [[0, 10], [1, 10], [4, 10], [6, 10], [7, 8], [10, 10]];

export function auditVectors() {
  const crypto = createNobleProvider();
  const hasher = createHasher((d) => crypto.sha256(d));
  const events: AuditEvent[] = Array.from({ length: 10 }, (_, i) => sampleEvent(i, 'golden'));
  const tree = new MemoryTree(hasher);
  for (const e of events) tree.appendLeaf(leafBytes(e));
  const logSeed = goldenLogSeed();
  const wSeed = goldenWitnessSeed();
  const cp = signCheckpoint(crypto, { origin: GOLDEN_ORIGIN, seed: logSeed }, { size: 10, root: tree.root() });
  const line = cosignatureLine(crypto, { name: GOLDEN_WITNESS, seed: wSeed }, checkpointBody(cp), GOLDEN_COSIGN_TIME);
  return {
    description: 'RFC 9162 tree over JCS audit events, C2SP checkpoint and Ed25519 cosignature (spec section 8)',
    log_vkey: typedVerifierKeyString(crypto, GOLDEN_ORIGIN, crypto.ed25519PublicKey(logSeed), SIG_TYPE_ED25519),
    witness_vkey: typedVerifierKeyString(crypto, GOLDEN_WITNESS, crypto.ed25519PublicKey(wSeed), SIG_TYPE_COSIGNATURE),
    events: events.map((e) => ({ event: e, leaf_jcs: new TextDecoder().decode(leafBytes(e)), leaf_hash: toHex(hasher.hashLeaf(leafBytes(e))) })),
    roots: Array.from({ length: 11 }, (_, n) => toHex(tree.rootAt(n))),
    inclusion: GOLDEN_INCLUSION.map(([index, size]) => ({ index, size, hashes: tree.inclusionProof(index, size).map(toB64u) })),
    consistency: GOLDEN_CONSISTENCY.map(([old_size, new_size]) => ({ old_size, new_size, hashes: tree.consistencyProof(old_size, new_size).map(toB64u) })),
    checkpoint: cp.note,
    cosigned_checkpoint: cp.note + line,
    cosignature_time: GOLDEN_COSIGN_TIME,
  };
}
