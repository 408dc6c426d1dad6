import { Redis } from 'ioredis';
import { jcs } from '../encoding/jcs.ts';
import { parseJson } from '../encoding/json.ts';
import { TalosError } from '../errors.ts';
import { CapabilityError } from './errors.ts';
import { revocationProblem, type Revocation, type RevocationSource } from './revocation.ts';

/**
 * Revocations shared by every gateway through Redis. Each revocation is persisted in a hash
 * (field = its signature, so a stored revocation is never overwritten by another; value = its
 * JCS text) and then announced on a pub/sub channel. Each source subscribes and, on every
 * (re)connection, first confirms its subscription and then reloads the whole hash: a
 * revocation written before the reload is in the hash, one written after it is announced
 * to a subscription that already exists, so none is missed across reconnects.
 * Values that are not well-formed revocations are dropped here (counted in `unreadable`);
 * the rest are delivered unverified: the checker verifies signatures (and counts the ignored ones).
 */
export const DEFAULT_REVOCATIONS_KEY = 'talos:revocations';
/** A stored or announced revocation longer than this is ignored unread. */
export const MAX_REVOCATION_TEXT = 4096;
/**
 * Distinct revocations one source keeps (and replays to every new subscriber). Past it a new
 * one is dropped and counted in `refused`, and publish() refuses (`revocations_full`): anyone
 * who can write to the hash or the channel could otherwise grow this process without bound.
 */
export const MAX_KNOWN_REVOCATIONS = 100_000;
/** How long `ready()` waits for Redis by default before it refuses (`redis_unreachable`). */
export const READY_TIMEOUT_MS = 10_000;

export interface RedisRevocationOptions {
  url: string;
  /** Hash key and channel name (default DEFAULT_REVOCATIONS_KEY). */
  key?: string;
  /** At most this many revocations kept (default MAX_KNOWN_REVOCATIONS). */
  maxKnown?: number;
}

export class RedisRevocationSource implements RevocationSource {
  readonly #key: string;
  readonly #maxKnown: number;
  readonly #cmd: Redis;
  readonly #sub: Redis;
  readonly #known = new Map<string, unknown>();
  readonly #listeners = new Set<(r: unknown) => void>();
  readonly #ready: Promise<void>;
  #closed = false;
  /** Entries that were too long, not JSON or not a well-formed revocation (signature failures are counted by the checker). */
  unreadable = 0;
  /** Well-formed entries dropped because `maxKnown` were already kept. */
  refused = 0;
  /** Completed full reloads (the first load included). */
  reloads = 0;

  constructor(o: RedisRevocationOptions) {
    this.#key = o.key ?? DEFAULT_REVOCATIONS_KEY;
    this.#maxKnown = o.maxKnown ?? MAX_KNOWN_REVOCATIONS;
    // Commands wait through outages instead of failing; the subscription is ours to renew.
    this.#cmd = new Redis(o.url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
    this.#sub = new Redis(o.url, { autoResubscribe: false, maxRetriesPerRequest: null, retryStrategy: () => 100 });
    this.#cmd.on('error', () => {}); // reconnection is automatic; errors surface as delays
    this.#sub.on('error', () => {});
    this.#sub.on('message', (channel: string, text: string) => {
      if (channel === this.#key) this.#accept(text);
    });
    let resolveReady!: () => void;
    this.#ready = new Promise((r) => (resolveReady = r));
    this.#sub.on('ready', () => {
      this.#resync().then(resolveReady, () => {
        /* the connection dropped again; the next 'ready' retries */
      });
    });
  }

  /**
   * Resolves once the first subscription and full load are done; refuses with
   * `redis_unreachable` if that takes longer than `timeoutMs` (the source keeps trying).
   */
  ready(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TalosError('redis_unreachable', `revocations: Redis did not answer within ${timeoutMs} ms`)), timeoutMs).unref();
    });
    return Promise.race([this.#ready, late]).finally(() => clearTimeout(timer));
  }

  async #resync(): Promise<void> {
    await this.#sub.subscribe(this.#key);
    const all = await this.#cmd.hgetall(this.#key);
    for (const text of Object.values(all)) this.#accept(text);
    this.reloads++;
  }

  #accept(text: string): void {
    if (this.#closed) return;
    if (typeof text !== 'string' || text.length > MAX_REVOCATION_TEXT) {
      this.unreadable++;
      return;
    }
    if (this.#known.has(text)) return;
    let value: unknown;
    try {
      value = parseJson(text);
    } catch {
      this.unreadable++;
      return;
    }
    // Only revocations are kept: arbitrary JSON would be held and replayed forever.
    if (revocationProblem(value) !== null) {
      this.unreadable++;
      return;
    }
    if (this.#known.size >= this.#maxKnown) {
      this.refused++;
      return;
    }
    this.#known.set(text, value);
    for (const l of this.#listeners) l(value);
  }

  subscribe(listener: (revocation: unknown) => void): () => void {
    this.#listeners.add(listener);
    for (const r of this.#known.values()) listener(r);
    return () => this.#listeners.delete(listener);
  }

  /** Persists, then announces. Refuses a malformed revocation (nothing is written). */
  async publish(revocation: Revocation): Promise<void> {
    const problem = revocationProblem(revocation);
    if (problem) throw new CapabilityError('bad_revocation', problem);
    const text = jcs(revocation);
    // Nothing is written that this gateway would not apply itself.
    if (!this.#known.has(text) && this.#known.size >= this.#maxKnown) {
      throw new TalosError('revocations_full', `at most ${this.#maxKnown} revocations are kept`);
    }
    await this.#cmd.hsetnx(this.#key, revocation.sig, text);
    await this.#cmd.publish(this.#key, text);
    this.#accept(text); // this gateway applies it at once, whatever the network does
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#sub.disconnect();
    this.#cmd.disconnect();
  }
}
