import type { CapabilityChecker } from '../runtime/capability/checker.ts';
import type { CryptoProvider } from '../runtime/crypto/provider.ts';
import type { Authorizer } from '../runtime/mcp/pipeline.ts';
import { respondHandshake, type HandshakeResult } from '../runtime/session/handshake.ts';
import type { KeyAgreement } from '../runtime/session/responder.ts';
import { respondHandshakeOnPool } from './handshake.ts';
import { CryptoPool, INLINE_MAX_ITEMS, PoolError } from './pool.ts';
import { PooledAuthorizer } from './pooled-authorizer.ts';

/**
 * The gateway's worker pool for its CPU-heavy crypto: the Ed25519 of uncached capability
 * chains (PooledAuthorizer) and the responder's side of handshakes. The threads start only
 * when work arrives together: a lone token miss or a lone handshake is cheaper inline (a
 * thread hop costs more than it saves, measured by `npm run bench -- pool`), so most gateways
 * never pay for the threads. `threads` 0: everything inline.
 */
export class GatewayCryptoPool {
  #pool: CryptoPool | undefined;
  #closed = false;
  /** Handshakes that arrived in the current event-loop turn. */
  #turn: { arrived: number } | undefined;

  constructor(
    readonly threads: number,
    private readonly crypto: CryptoProvider,
  ) {}

  /** The authorizer of `checker`: pooled when threads > 0, else the checker itself. */
  authorizer(checker: CapabilityChecker): Authorizer {
    return this.threads > 0 ? new PooledAuthorizer(checker, () => this.#get()) : checker;
  }

  /**
   * The responder's key agreement. Handshakes arriving in the same event-loop turn go to the
   * pool together; a lone one, while the pool has not been needed yet, runs inline.
   */
  readonly keyAgreement: KeyAgreement = async (self, initiatorDid, initiatorKey, fields, prekeys): Promise<HandshakeResult> => {
    if (this.threads === 0 || this.#closed) return respondHandshake(this.crypto, self, initiatorDid, initiatorKey, fields, prekeys);
    let turn = this.#turn;
    if (turn === undefined) {
      turn = this.#turn = { arrived: 0 };
      setImmediate(() => (this.#turn = undefined));
    }
    turn.arrived++;
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.#pool === undefined && turn.arrived === 1) return respondHandshake(this.crypto, self, initiatorDid, initiatorKey, fields, prekeys);
    return respondHandshakeOnPool(this.#get(), self, initiatorDid, initiatorKey, fields, prekeys);
  };

  /**
   * The leaf hashes of an audit batch too large to hash inline (INLINE_MAX_ITEMS), computed on
   * the pool; undefined (the store hashes) for smaller batches or when the pool refuses.
   */
  readonly hashLeaves = (leaves: Uint8Array[]): Promise<Uint8Array[] | undefined> | undefined => {
    if (this.threads === 0 || this.#closed || leaves.length <= INLINE_MAX_ITEMS['merkle-leaf-hashes']) return undefined;
    return this.#get()
      .runOnPool('merkle-leaf-hashes', leaves, null)
      .catch((err: unknown) => {
        if (err instanceof PoolError) return undefined;
        throw err;
      });
  };

  /** The pool once started (for metrics and tests). */
  get started(): CryptoPool | undefined {
    return this.#pool;
  }

  #get(): CryptoPool {
    // Refused like a closed pool: the callers then verify inline.
    if (this.#closed) throw new PoolError('pool_closed', 'the worker pool is closed');
    return (this.#pool ??= new CryptoPool({ threads: this.threads, provider: this.crypto.name }));
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#pool?.close();
  }
}
