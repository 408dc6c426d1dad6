import { fingerprint, type CapabilityChecker, type CheckResult } from '../runtime/capability/checker.ts';
import type { AccessRequest } from '../runtime/capability/grant.ts';
import type { SignatureVerdict } from '../runtime/capability/verify.ts';
import type { Authorizer } from '../runtime/mcp/pipeline.ts';
import type { CryptoPool } from './pool.ts';

export interface PooledAuthorizerOptions {
  /**
   * A token warmed alone in its event-loop turn while no batch of this authorizer is on the
   * pool is left to the check, verified inline (default true). Measured with `npm run bench
   * -- pool` (gateway_1_caller_us): for a lone caller the thread hop costs more latency than
   * it saves; under concurrency tokens arrive together and go to the pool.
   */
  loneInline?: boolean;
}

/**
 * Tokens one pool batch carries at most; a larger burst is split into several batches, so
 * when the pool's queue is nearly full only the batches that do not fit fall back inline.
 */
export const MAX_WARM_BATCH = 128;

interface InFlight {
  compact: string;
  done: Promise<void>;
}

interface Batch {
  tokens: string[];
  settle: ((verdict: SignatureVerdict | undefined) => void)[];
}

/**
 * The gateway's Authorizer with the Ed25519 work of checker cache misses moved to the worker
 * pool: `new PooledAuthorizer(checker, pool)` in place of the checker.
 *  - warm(token) on a cached token returns undefined: the hot path stays synchronous.
 *  - Otherwise the token joins this turn's batch (concurrent warms of one token share one
 *    place in it); the batch's signature stages run on the pool and the checker admits each
 *    verdict, running every other stage itself (admitVerified).
 *  - A lone token at an idle pool (loneInline), or a batch the pool refuses (pool_overloaded,
 *    pool_closed, pool_task_failed), is not admitted: the check that follows misses the cache
 *    and verifies inline, exactly as without a pool. No request fails because of the pool.
 * check is the checker's own, so revocation, eviction and refusals are the plain checker's.
 */
export class PooledAuthorizer implements Authorizer {
  readonly #checker: CapabilityChecker;
  readonly #pool: () => CryptoPool;
  readonly #loneInline: boolean;
  /** Warms waiting for a verdict, by token fingerprint (a colliding token gets its own place). */
  readonly #inFlight = new Map<number, InFlight>();
  #gathering: Batch | undefined;
  #batchesOnPool = 0;
  /** Tokens admitted from a pool verdict, left to the check (lone), joined to one in flight, refused by the pool. */
  readonly stats = { pooled: 0, lone: 0, coalesced: 0, fellBack: 0 };

  /** `pool` may be a getter: the pool is then started only when a batch first needs it. */
  constructor(checker: CapabilityChecker, pool: CryptoPool | (() => CryptoPool), options: PooledAuthorizerOptions = {}) {
    this.#checker = checker;
    this.#pool = typeof pool === 'function' ? pool : () => pool;
    this.#loneInline = options.loneInline ?? true;
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
    slot.done = this.#verdictOf(token).then((verdict) => {
      if (this.#inFlight.get(fp) === slot) this.#inFlight.delete(fp);
      if (verdict !== undefined) this.#checker.admitVerified(token, verdict);
    });
    if (pending === undefined) this.#inFlight.set(fp, slot);
    return slot.done;
  }

  /** Warms waiting for a verdict (for metrics and tests). */
  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** The pool's signature verdict for `token`, or undefined when the check is to verify it inline. */
  #verdictOf(token: string): Promise<SignatureVerdict | undefined> {
    let batch = this.#gathering;
    if (batch === undefined || batch.tokens.length >= MAX_WARM_BATCH) {
      const fresh: Batch = (this.#gathering = { tokens: [], settle: [] });
      setImmediate(() => void this.#dispatch(fresh));
      batch = fresh;
    }
    batch.tokens.push(token);
    return new Promise((resolve) => batch.settle.push(resolve));
  }

  async #dispatch(batch: Batch): Promise<void> {
    if (this.#gathering === batch) this.#gathering = undefined;
    const { tokens, settle } = batch;
    if (this.#loneInline && tokens.length === 1 && this.#batchesOnPool === 0) {
      this.stats.lone++;
      settle[0]!(undefined);
      return;
    }
    this.#batchesOnPool++;
    try {
      const verdicts = await this.#pool().runOnPool('verify-token-signatures', tokens, null);
      this.stats.pooled += tokens.length;
      settle.forEach((resolve, i) => resolve(verdicts[i]));
    } catch {
      // runOnPool refuses only with PoolError; whatever the reason, the checks verify inline.
      this.stats.fellBack += tokens.length;
      settle.forEach((resolve) => resolve(undefined));
    } finally {
      this.#batchesOnPool--;
    }
  }
}

