import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import type { CryptoProvider, ProviderName } from '../runtime/crypto/provider.ts';
import { TalosError } from '../runtime/errors.ts';
import { runTask, type TaskName, type TaskItem, type TaskResult, type TaskShared } from './tasks.ts';

/**
 * Refusals of the worker pool. Codes (stable):
 * - `pool_overloaded`: the pool's queue is full (MAX_QUEUE); the caller sheds load
 * - `pool_closed`: the pool was closed
 * - `pool_task_failed`: a task threw inside a worker
 */
export class PoolError extends TalosError {}

/** Tasks waiting for a thread, at most; past it work is refused, never queued without bound. */
export const DEFAULT_MAX_QUEUE = 256;
/** Items one posted task carries at most (a smaller batch is split evenly over the threads). */
export const DEFAULT_CHUNK_ITEMS = 32;
/**
 * Batches with at most this many items run inline on the calling thread: a thread hop (clone,
 * post, wake, clone back) costs more than it saves. Measured with `npm run bench -- pool`
 * (bench/results/pool.json, `latency_*` rows): one uncached token chain is faster inline than
 * through the pool, so single items stay inline; batches go to the pool.
 */
export const INLINE_MAX_ITEMS: Record<TaskName, number> = {
  'verify-objects': 1,
  'verify-token-chains': 1,
  // Sent by PooledAuthorizer only to get Ed25519 work off the event loop (it leaves a lone
  // token to the checker itself): run inline it would parse each token twice on that thread.
  'verify-token-signatures': 0,
  'sha256-batch': 256,
  // The same SHA-256 of the same sizes (one more byte per leaf): the same threshold.
  'merkle-leaf-hashes': 256,
  // Set like 'verify-token-chains' (not measured on its own): a handshake (up to 4 X25519,
  // ML-KEM decapsulation, 1 Ed25519 verify) costs about as much as one chain.
  'respond-handshakes': 1,
};

export interface CryptoPoolOptions {
  /** Worker threads (default: the machine's parallelism, at least 1). */
  threads?: number;
  maxQueue?: number;
  chunkItems?: number;
  /** Provider used in the workers and inline (default: TALOS_CRYPTO, else node). */
  provider?: ProviderName;
  /** Per-task inline thresholds (default INLINE_MAX_ITEMS); 0 sends everything to the pool. */
  inlineMaxItems?: Partial<Record<TaskName, number>>;
}

const WORKER_FILE = new URL('./crypto-worker.mjs', import.meta.url).href;

/**
 * The worker pool for CPU-heavy crypto (piscina). `run` decides per batch: small batches inline,
 * larger ones split into chunks across the threads. The queue is bounded: when it is full,
 * `run` throws PoolError('pool_overloaded') at once rather than letting latency grow.
 */
export class CryptoPool {
  readonly threads: number;
  readonly maxQueue: number;
  readonly crypto: CryptoProvider;
  readonly #piscina: Piscina;
  readonly #chunkItems: number;
  readonly #inline: Record<TaskName, number>;
  #closed = false;
  #active = 0;
  readonly #gathering = new Map<string, { task: TaskName; shared: unknown; items: unknown[]; settle: [(r: unknown) => void, (e: unknown) => void][] }>();
  /** Batches run inline and on the pool (for tests and metrics). */
  readonly stats = { inlineBatches: 0, poolBatches: 0 };

  constructor(options: CryptoPoolOptions = {}) {
    this.threads = Math.max(1, options.threads ?? availableParallelism());
    this.maxQueue = options.maxQueue ?? DEFAULT_MAX_QUEUE;
    this.#chunkItems = options.chunkItems ?? DEFAULT_CHUNK_ITEMS;
    this.#inline = { ...INLINE_MAX_ITEMS, ...options.inlineMaxItems };
    this.crypto = createCryptoProvider(options.provider ? { name: options.provider } : {});
    this.#piscina = new Piscina({
      filename: WORKER_FILE,
      minThreads: this.threads,
      maxThreads: this.threads,
      maxQueue: this.maxQueue,
      concurrentTasksPerWorker: 1,
      idleTimeout: 60_000,
      workerData: { provider: this.crypto.name },
    });
  }

  /** Runs `task` over `items`: inline when small, else on the pool in chunks. Results keep item order. */
  async run<N extends TaskName>(task: N, items: TaskItem<N>[], shared: TaskShared<N>): Promise<TaskResult<N>[]> {
    if (items.length <= this.#inline[task]) return this.runInline(task, items, shared);
    return this.runOnPool(task, items, shared);
  }

  /**
   * One item, gathered with the other items of the same task and shared input submitted in the
   * same turn of the event loop, then run as one batch by `run`. A lone request (a quiet
   * gateway) runs inline; a burst of concurrent requests is spread over the threads.
   */
  submit<N extends TaskName>(task: N, item: TaskItem<N>, shared: TaskShared<N>): Promise<TaskResult<N>> {
    if (this.#closed) return Promise.reject(new PoolError('pool_closed', 'the worker pool is closed'));
    const key = `${task}\u0000${JSON.stringify(shared)}`;
    let batch = this.#gathering.get(key);
    if (!batch) {
      const fresh = { task: task as TaskName, shared: shared as unknown, items: [] as unknown[], settle: [] as [(r: unknown) => void, (e: unknown) => void][] };
      this.#gathering.set(key, fresh);
      setImmediate(() => {
        this.#gathering.delete(key);
        this.run(fresh.task, fresh.items as never[], fresh.shared as never).then(
          (results) => fresh.settle.forEach(([resolve], i) => resolve(results[i])),
          (err: unknown) => fresh.settle.forEach(([, reject]) => reject(err)),
        );
      });
      batch = fresh;
    }
    batch.items.push(item);
    return new Promise((resolve, reject) => batch.settle.push([resolve as (r: unknown) => void, reject]));
  }

  runInline<N extends TaskName>(task: N, items: TaskItem<N>[], shared: TaskShared<N>): TaskResult<N>[] {
    if (this.#closed) throw new PoolError('pool_closed', 'the worker pool is closed');
    this.stats.inlineBatches++;
    return runTask(this.crypto, { task, items, shared }) as TaskResult<N>[];
  }

  async runOnPool<N extends TaskName>(task: N, items: TaskItem<N>[], shared: TaskShared<N>): Promise<TaskResult<N>[]> {
    if (this.#closed) throw new PoolError('pool_closed', 'the worker pool is closed');
    // Spread a small batch over every thread (latency), cap the chunk for a large one (balance).
    const size = Math.max(1, Math.min(this.#chunkItems, Math.ceil(items.length / this.threads)));
    const chunks: TaskItem<N>[][] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
    // All chunks of a batch are admitted together or not at all: no half-run batch.
    // In flight = running (one per thread) + queued (at most maxQueue): all posted by us.
    if (this.#active + chunks.length > this.threads + this.maxQueue) {
      throw new PoolError('pool_overloaded', `the worker pool queue is full (${this.maxQueue} tasks)`);
    }
    this.#active += chunks.length;
    this.stats.poolBatches++;
    try {
      const results = await Promise.all(chunks.map((chunk) => this.#post(task, chunk, shared)));
      return results.flat() as TaskResult<N>[];
    } finally {
      this.#active -= chunks.length;
    }
  }

  async #post(task: string, items: unknown[], shared: unknown): Promise<unknown[]> {
    try {
      return (await this.#piscina.run({ task, items, shared })) as unknown[];
    } catch (err) {
      if (err instanceof Error && err.message === 'Task queue is at limit') {
        throw new PoolError('pool_overloaded', `the worker pool queue is full (${this.maxQueue} tasks)`);
      }
      if (this.#closed) throw new PoolError('pool_closed', 'the worker pool is closed');
      throw new PoolError('pool_task_failed', `pool task ${task} failed: ${err instanceof Error ? err.message : 'error'}`);
    }
  }

  /** For talos_queue_depth{queue="pool"}. */
  depth() {
    return { waiting: this.#piscina.queueSize, active: Math.min(this.#active, this.threads), delayed: 0 };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#piscina.destroy();
  }
}
