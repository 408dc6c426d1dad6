import type { CryptoProvider } from '../crypto/provider.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { fromB64, toB64 } from '../encoding/base64url.ts';
import { AuditError } from './errors.ts';
import { createHasher, verifyConsistency } from './merkle.ts';
import { openCheckpoint, type SignedCheckpoint } from './checkpoint.ts';
import { cosignatureLine, type WitnessKey } from './cosignature.ts';
import { checkProofHashes, ForkEvidenceBuilder } from './fork.ts';

/**
 * A witness (C2SP tlog-cosignature): cosigns a log's checkpoint only after checking that it is
 * consistent with the last checkpoint it cosigned for that log, so two witnesses' signatures
 * can never cover a split view. The state is one (size, root, note) per log; it must be
 * persisted by the caller (`state()` / constructor) before the cosignature is published.
 */
export interface WitnessedLog {
  origin: string;
  publicKey: Uint8Array;
}

export interface WitnessState {
  [origin: string]: { size: number; root: string; note: string };
}

/**
 * Checks a witness state read from disk. Anything but an object of { size, root, note } per
 * origin is refused: a mistaken shape read as "no state" would let the witness cosign without
 * the consistency check against what it cosigned before.
 */
export function checkWitnessState(value: unknown): WitnessState {
  const bad = (why: string) => new AuditError('bad_config', `witness state ${why}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('must be a JSON object keyed by log origin');
  for (const [origin, s] of Object.entries(value)) {
    if (typeof s !== 'object' || s === null || Array.isArray(s)) throw bad(`for ${origin} must be an object { size, root, note }`);
    const e = s as Record<string, unknown>;
    if (!Number.isSafeInteger(e.size) || (e.size as number) < 0 || typeof e.root !== 'string' || typeof e.note !== 'string') {
      throw bad(`for ${origin} must hold a size (non-negative integer), a root and a note (strings)`);
    }
  }
  return value as WitnessState;
}

export class Witness {
  private readonly logs = new Map<string, WitnessedLog>();
  private readonly last = new Map<string, SignedCheckpoint>();

  constructor(
    private readonly crypto: CryptoProvider,
    private readonly key: WitnessKey,
    logs: WitnessedLog[],
    state: WitnessState = {},
    private readonly now: () => number = () => Math.floor(Date.now() / 1000),
  ) {
    for (const l of logs) this.logs.set(l.origin, l);
    for (const [origin, s] of Object.entries(checkWitnessState(state))) {
      const log = this.logs.get(origin);
      if (!log) continue;
      const cp = openCheckpoint(crypto, s.note, origin, log.publicKey);
      if (cp.size !== s.size || toB64(cp.root) !== s.root) throw new AuditError('bad_checkpoint', 'witness state does not match its note');
      this.last.set(origin, cp);
    }
  }

  /**
   * Verifies the log's signature and the consistency proof from the last cosigned checkpoint,
   * then returns the cosignature line to append to the note. Nothing changes on refusal.
   */
  cosign(note: string, origin: string, proof: Uint8Array[]): { line: string; checkpoint: SignedCheckpoint } {
    checkProofHashes(proof);
    const log = this.logs.get(origin);
    if (!log) throw new AuditError('unknown_key', `this witness does not follow ${origin}`);
    const cp = openCheckpoint(this.crypto, note, origin, log.publicKey);
    const prev = this.last.get(origin);
    if (prev) {
      const hasher = createHasher((d) => this.crypto.sha256(d));
      if (cp.size < prev.size) throw new AuditError('stale_checkpoint', 'checkpoint is older than the last one cosigned');
      if (!verifyConsistency(hasher, prev.size, cp.size, prev.root, cp.root, proof)) {
        const evidence = new ForkEvidenceBuilder(this.crypto, origin, log.publicKey).fromCheckpoints(prev, cp, proof);
        if (evidence) throw Object.assign(new AuditError('fork', 'the log signed two checkpoints that cannot both be true'), { evidence });
        throw new AuditError('inconsistent', 'consistency proof from the last cosigned checkpoint does not verify');
      }
    }
    const text = note.slice(0, note.lastIndexOf('\n\n') + 1);
    const line = cosignatureLine(this.crypto, this.key, text, this.now());
    this.last.set(origin, cp);
    return { line, checkpoint: cp };
  }

  state(): WitnessState {
    const out: WitnessState = {};
    for (const [origin, cp] of this.last) out[origin] = { size: cp.size, root: toB64(cp.root), note: cp.note };
    return out;
  }

  lastCosigned(origin: string): SignedCheckpoint | undefined {
    return this.last.get(origin);
  }
}

export { bytesEqual, fromB64 };
