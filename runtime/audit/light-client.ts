import type { CryptoProvider } from '../crypto/provider.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { AuditError } from './errors.ts';
import { createHasher, verifyConsistency, verifyInclusion, type Hasher } from './merkle.ts';
import { openCheckpoint, type SignedCheckpoint } from './checkpoint.ts';
import { checkProofHashes, ForkEvidenceBuilder, type ForkEvidence } from './fork.ts';
import { verifyCosignature } from './cosignature.ts';
import { leafBytes, type AuditEvent } from './event.ts';

/**
 * A light client of one log: pins the log's origin and key, keeps only the newest verified
 * checkpoint (its note is all it stores), moves forward only with a valid consistency proof,
 * and checks inclusion of the events it cares about. A conflict it can prove is thrown as
 * AuditError('fork') carrying `evidence` that anyone with the log's key can check.
 */
export interface LightClientOptions {
  origin: string;
  publicKey: Uint8Array;
  /** The newest checkpoint note verified earlier (the only state kept between runs). */
  trusted?: string;
  /** Witnesses whose cosignatures a checkpoint must carry (quorum = all listed). */
  witnesses?: { name: string; publicKey: Uint8Array }[];
}

export class ForkError extends AuditError {
  constructor(readonly evidence: ForkEvidence) {
    super('fork', 'the log signed two checkpoints that cannot both be true');
  }
}

export class LightClient {
  private current: SignedCheckpoint | null = null;
  private readonly hasher: Hasher;
  private readonly forks: ForkEvidenceBuilder;

  constructor(
    private readonly crypto: CryptoProvider,
    private readonly options: LightClientOptions,
  ) {
    this.hasher = createHasher((d) => crypto.sha256(d));
    this.forks = new ForkEvidenceBuilder(crypto, options.origin, options.publicKey);
    if (options.trusted) this.current = this.open(options.trusted);
  }

  get checkpoint(): SignedCheckpoint | null {
    return this.current;
  }

  /** What the client persists: the newest verified note, nothing else. */
  storedState(): string {
    return this.current?.note ?? '';
  }

  private open(note: string): SignedCheckpoint {
    const cp = openCheckpoint(this.crypto, note, this.options.origin, this.options.publicKey);
    if (cp.size === 0 && !bytesEqual(cp.root, this.hasher.emptyRoot())) throw new AuditError('bad_checkpoint', 'a size-0 checkpoint must have the empty root');
    for (const w of this.options.witnesses ?? []) {
      if (!verifyCosignature(this.crypto, note, w.name, w.publicKey)) throw new AuditError('missing_cosignature', `checkpoint lacks a cosignature by ${w.name}`);
    }
    return cp;
  }

  /**
   * Offers a newer checkpoint with the consistency proof from the current one. Returns true
   * when it was adopted, false when it is not newer (an older consistent one is ignored).
   * Nothing changes on any refusal.
   */
  update(note: string, proof: Uint8Array[]): boolean {
    checkProofHashes(proof);
    const next = this.open(note);
    const cur = this.current;
    if (!cur) {
      this.current = next;
      return true;
    }
    if (next.size === cur.size) {
      if (bytesEqual(next.root, cur.root)) return false;
      throw new ForkError(this.forks.fromCheckpoints(cur, next, [])!);
    }
    const [small, large] = next.size < cur.size ? [next, cur] : [cur, next];
    if (!verifyConsistency(this.hasher, small.size, large.size, small.root, large.root, proof)) {
      const evidence = this.forks.fromCheckpoints(small, large, proof);
      if (evidence) throw new ForkError(evidence);
      throw new AuditError('inconsistent', 'consistency proof does not verify');
    }
    if (next.size < cur.size) return false;
    this.current = next;
    return true;
  }

  /** Checks that `event` is leaf `index` of the log under the current checkpoint. */
  verifyEvent(event: AuditEvent, index: number, proof: Uint8Array[]): boolean {
    return this.verifyLeaf(leafBytes(event), index, proof);
  }

  verifyLeaf(leaf: Uint8Array, index: number, proof: Uint8Array[]): boolean {
    const cur = this.current;
    if (!cur) throw new AuditError('no_checkpoint', 'the light client has no verified checkpoint yet');
    return verifyInclusion(this.hasher, index, cur.size, this.hasher.hashLeaf(leaf), proof, cur.root);
  }
}
