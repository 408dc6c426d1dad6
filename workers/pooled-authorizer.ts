import { fingerprint, type CapabilityChecker, type CheckResult } from '../runtime/capability/checker.ts';
import type { AccessRequest } from '../runtime/capability/grant.ts';
import type { SignatureVerdict } from '../runtime/capability/verify.ts';
import type { Authorizer } from '../runtime/mcp/pipeline.ts';
import { PoolError, type CryptoPool } from './pool.ts';

interface InFlight {
  compact: string;
  done: Promise<void>;
}

/**
 * The gateway's Authorizer with the Ed25519 work of a checker cache miss moved to the worker
 * pool: `new PooledAuthorizer(checker, pool)` in place of the checker.
 *  - warm(token) on a cached token returns undefined: the hot path stays synchronous.
 *  - Otherwise the token's signature stage runs on a pool thread (tokens warmed in the same
 *    event-loop turn share one batch; concurrent warms of one token share one task) and the
 *    checker admits the verdict, running every other stage itself (admitVerified).
 *  - When the pool refuses (pool_overloaded, pool_closed, pool_task_failed) the warm simply
 *    ends: the check that follows misses the cache and verifies inline, as without a pool.
 * check is the checker's own, so revocation, eviction and refusals are the plain checker's.
 */
export class PooledAuthorizer implements Authorizer {
  readonly #checker: CapabilityChecker;
  readonly #pool: CryptoPool;
  /** Warms waiting for the pool, by token fingerprint (a colliding token runs its own task). */
  readonly #inFlight = new Map<number, InFlight>();
  /** Tokens admitted from a pool verdict, warms that joined one in flight, pool refusals. */
  readonly stats = { pooled: 0, coalesced: 0, fellBack: 0 };

  constructor(checker: CapabilityChecker, pool: CryptoPool) {
    this.#checker = checker;
    this.#pool = pool;
  }

  check(token: string, request: AccessRequest, sessionDid: string, nowMs: number): CheckResult {
    return this.#checker.check(token, request, sessionDid, nowMs);
  }

  warm(token: string): Promise<void> | undefined {
    if (this.#checker.isCached(token)) return undefined;
    const fp = fingerprint(token);
    const pending = this.#inFlight.get(fp);
    if (pending !== undefined && pending.compact === token) {
      this.stats.coalesced++;
      return pending.done;
    }
    const slot: InFlight = { compact: token, done: Promise.resolve() };
    slot.done = this.#pool.submit('verify-token-signatures', token, null).then(
      (verdict: SignatureVerdict) => {
        this.#release(fp, slot);
        this.stats.pooled++;
        this.#checker.admitVerified(token, verdict);
      },
      (err: unknown) => {
        this.#release(fp, slot);
        if (!(err instanceof PoolError)) throw err;
        this.stats.fellBack++;
      },
    );
    if (pending === undefined) this.#inFlight.set(fp, slot);
    return slot.done;
  }

  /** Warms waiting for the pool (for metrics and tests). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  #release(fp: number, slot: InFlight): void {
    if (this.#inFlight.get(fp) === slot) this.#inFlight.delete(fp);
  }
}
