import { AuditError } from '../../runtime/audit/errors.ts';
import type { AppendResult } from '../../runtime/store/audit-store.ts';

/**
 * The auditor's group-commit writer: the single writer of the audit store. Everything queued
 * while a batch is being written goes into the next transaction (up to `maxBatch` leaves), so
 * a burst costs one commit per batch, not one per event; a lone append is one batch of one.
 * The queue is bounded (`maxQueue` requests waiting, the batch being written not counted): a
 * full queue refuses with 'audit_backpressure' at once. Nothing is dropped silently: every
 * append resolves with its index once durable, or rejects (refused, closed, or its batch failed
 * to commit, in which case nothing of that batch was written).
 *
 * This is the hot path of every gateway call, so it is plain code rather than machine
 * transitions: the auditor machine (machines/auditor.machine.ts) sees the writer only through
 * `onCommitted` and its drain at close.
 */
export interface WriterLimits {
  maxBatch: number;
  maxQueue: number;
}

export interface Appended {
  index: number;
  leafHash: Uint8Array;
}

interface Waiting {
  leaf: Uint8Array;
  resolve: (a: Appended) => void;
  reject: (e: unknown) => void;
}

export class GroupCommitWriter {
  #queue: Waiting[] = [];
  #writing = false;
  #closed = false;
  #drained: (() => void) | undefined;
  #draining: Promise<void> | undefined;
  /** Leaves committed since this writer started. */
  committed = 0;

  constructor(
    private readonly commit: (leaves: Uint8Array[]) => Promise<AppendResult>,
    private readonly limits: WriterLimits,
    /** After each successful commit, with its size. */
    private readonly onCommitted: (count: number) => void = () => {},
  ) {}

  append(leaf: Uint8Array): Promise<Appended> {
    if (this.#closed) return Promise.reject(new AuditError('audit_closed', 'the auditor is closed'));
    if (this.#queue.length >= this.limits.maxQueue) return Promise.reject(new AuditError('audit_backpressure', 'the audit queue is full: retry later'));
    return new Promise<Appended>((resolve, reject) => {
      this.#queue.push({ leaf, resolve, reject });
      if (!this.#writing) {
        this.#writing = true;
        void this.#run();
      }
    });
  }

  /** Refuses new appends and resolves once everything queued has been written (or failed). */
  close(): Promise<void> {
    this.#closed = true;
    if (!this.#writing) return Promise.resolve();
    return (this.#draining ??= new Promise<void>((resolve) => (this.#drained = resolve)));
  }

  async #run(): Promise<void> {
    while (this.#queue.length > 0) {
      // Yield to the event loop before each write: a synchronous store (SQLite) fed by callers
      // that only await would otherwise run on microtasks alone and starve timers and I/O; it
      // also lets the requests of this turn join the batch.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const batch = this.#queue.length <= this.limits.maxBatch ? this.#queue : this.#queue.slice(0, this.limits.maxBatch);
      this.#queue = batch === this.#queue ? [] : this.#queue.slice(batch.length);
      let result: AppendResult;
      try {
        result = await this.commit(batch.map((w) => w.leaf));
      } catch (err) {
        for (const w of batch) w.reject(err);
        continue;
      }
      this.committed += batch.length;
      batch.forEach((w, i) => w.resolve({ index: result.first + i, leafHash: result.leafHashes[i]! }));
      this.onCommitted(batch.length);
    }
    this.#writing = false;
    this.#drained?.();
  }
}
