import type { CryptoProvider } from '../crypto/provider.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { fromB64, toB64 } from '../encoding/base64url.ts';
import { AuditError } from './errors.ts';
import { createHasher, rootsFromConsistencyProof } from './merkle.ts';
import { openCheckpoint, type SignedCheckpoint } from './checkpoint.ts';

/**
 * Proof that a log signed two checkpoints that cannot both be true, checkable by anyone who
 * knows the log's public key:
 *  - same_size: equal sizes, different roots;
 *  - inconsistent: a consistency proof from the smaller to the larger checkpoint that
 *    reproduces the larger root but not the smaller one (the larger tree commits to a
 *    different history). The proof nodes come from the log itself.
 */
export interface ForkEvidence {
  kind: 'same_size' | 'inconsistent';
  origin: string;
  /** The two signed notes, smaller size first. */
  notes: [string, string];
  /** Consistency proof (standard base64 hashes), for kind 'inconsistent'. */
  proof?: string[];
}

/**
 * Refuses a proof that is not a list of hashes before it reaches the verifier or the evidence
 * builder (which would otherwise fail with a TypeError instead of a typed refusal).
 */
export function checkProofHashes(proof: unknown): asserts proof is Uint8Array[] {
  if (!Array.isArray(proof) || proof.some((h) => !(h instanceof Uint8Array))) throw new AuditError('bad_proof', 'a proof is an array of hashes (byte arrays)');
}

export class ForkEvidenceBuilder {
  constructor(
    private readonly crypto: CryptoProvider,
    private readonly origin: string,
    private readonly publicKey: Uint8Array,
  ) {}

  /** Evidence when `a` and `b` conflict conclusively; null when the proof is merely bad. */
  fromCheckpoints(a: SignedCheckpoint, b: SignedCheckpoint, proof: Uint8Array[]): ForkEvidence | null {
    const [small, large] = a.size <= b.size ? [a, b] : [b, a];
    const evidence: ForkEvidence =
      small.size === large.size
        ? { kind: 'same_size', origin: this.origin, notes: [small.note, large.note] }
        : { kind: 'inconsistent', origin: this.origin, notes: [small.note, large.note], proof: proof.map(toB64) };
    return checkForkEvidence(this.crypto, evidence, this.publicKey) ? evidence : null;
  }
}

/** True when the evidence proves a fork of the log with this key. Never throws on bad input. */
export function checkForkEvidence(crypto: CryptoProvider, evidence: ForkEvidence, publicKey: Uint8Array): boolean {
  try {
    const a = openCheckpoint(crypto, evidence.notes[0], evidence.origin, publicKey);
    const b = openCheckpoint(crypto, evidence.notes[1], evidence.origin, publicKey);
    if (evidence.kind === 'same_size') return a.size === b.size && !bytesEqual(a.root, b.root);
    if (evidence.kind !== 'inconsistent' || !Array.isArray(evidence.proof) || a.size >= b.size) return false;
    const hasher = createHasher((d) => crypto.sha256(d));
    if (a.size === 0) return !bytesEqual(a.root, hasher.emptyRoot());
    const proof = evidence.proof.map((h) => fromB64(h));
    const roots = rootsFromConsistencyProof(hasher, a.size, b.size, a.root, proof);
    return roots !== null && bytesEqual(roots.newRoot, b.root) && !bytesEqual(roots.oldRoot, a.root);
  } catch (e) {
    if (e instanceof AuditError || (e as { code?: string }).code) return false;
    throw e;
  }
}
