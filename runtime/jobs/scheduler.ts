import { JobError } from './errors.ts';

/**
 * The job scheduler port (contracts/SPEC.md section 10, "Scheduled jobs"). Two adapters pass the
 * same contract tests: BullMQ on Redis (durable, shared by every runtime process) and an
 * in-process one (no Redis; injectable clock for the simulator).
 *
 * Semantics both keep:
 * - `schedule(name, everyMs)` is an upsert: scheduling the same name again (after a restart, or
 *   from another process) replaces the schedule, never adds a second one.
 * - Each run has a stable `runId`: `repeat:<name>:<slot ms>` for scheduled runs,
 *   `once:<name>:<key>` for enqueued ones. A retry or a re-delivery after a crash carries the
 *   same runId, and a runId that is pending, running or recently completed is never queued
 *   twice. Delivery is at least once: handlers make their effects idempotent by runId.
 * - A failing handler is retried up to JOB_ATTEMPTS times with exponential backoff.
 * - Runs of one scheduler are processed one at a time, in order.
 */
export interface JobRun<D = unknown> {
  name: string;
  runId: string;
  data: D;
  /** The slot (ms since epoch) this run stands for: its scheduled time, or its enqueue time. */
  slot: number;
  /** 1 on the first try. */
  attempt: number;
}

export type JobHandler<D = unknown> = (run: JobRun<D>) => Promise<void> | void;

export interface QueueDepth {
  waiting: number;
  active: number;
  delayed: number;
  failed: number;
}

export interface Scheduler {
  readonly kind: 'bullmq' | 'in-process';
  /** Runs `name` every `everyMs` (first run soon after), with `data`. Upsert. */
  schedule(name: string, everyMs: number, data?: unknown): Promise<void>;
  unschedule(name: string): Promise<boolean>;
  /** Queues one run of `name` now; the same `key` for the same name runs once. */
  enqueue(name: string, data: unknown, key: string): Promise<void>;
  /** Registers the handler for `name` (one per name; a later call replaces it). */
  onJob<D = unknown>(name: string, handler: JobHandler<D>): void;
  start(): Promise<void>;
  /** Stops taking runs, waits for running handlers, releases every timer and connection. */
  stop(): Promise<void>;
  depth(): Promise<QueueDepth>;
  /** False while the backing store is unreachable (for /readyz). */
  isHealthy(): boolean;
}

export interface SchedulerEvents {
  /** A run finished (ok) or failed for good (after its last attempt). */
  onRunSettled?: (run: JobRun, outcome: { ok: boolean; error?: unknown; final: boolean }) => void;
}

export const JOB_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;
/** No `:`: BullMQ takes custom job ids of exactly three colon-separated parts (once:<name>:<key>). */
export const JOB_KEY_PATTERN = /^[A-Za-z0-9._-]{1,128}$/;
/** Shorter intervals would turn the scheduler into a busy loop (tests use a few hundred ms). */
export const MIN_INTERVAL_MS = 100;
export const MAX_INTERVAL_MS = 30 * 24 * 3600 * 1000;
export const MAX_JOB_DATA_BYTES = 64 * 1024;
export const JOB_ATTEMPTS = 3;
export const DEFAULT_BACKOFF_MS = 1000;
/** How many completed runIds are remembered to refuse a duplicate `enqueue` key. */
export const COMPLETED_RUNS_KEPT = 1000;

export function checkName(name: string): void {
  if (typeof name !== 'string' || !JOB_NAME_PATTERN.test(name)) {
    throw new JobError('job_bad_name', 'job name must match ' + JOB_NAME_PATTERN.source);
  }
}

export function checkInterval(everyMs: number): void {
  if (!Number.isInteger(everyMs) || everyMs < MIN_INTERVAL_MS || everyMs > MAX_INTERVAL_MS) {
    throw new JobError('job_bad_interval', `interval must be an integer ${MIN_INTERVAL_MS}..${MAX_INTERVAL_MS} ms`);
  }
}

export function checkKey(key: string): void {
  if (typeof key !== 'string' || !JOB_KEY_PATTERN.test(key)) {
    throw new JobError('job_bad_name', 'job key must match ' + JOB_KEY_PATTERN.source);
  }
}

/** Job data travels as JSON (it crosses Redis); returns a JSON-clean copy. */
export function checkData(data: unknown): unknown {
  let text: string | undefined;
  try {
    text = JSON.stringify(data ?? null);
  } catch {
    throw new JobError('job_bad_data', 'job data must be JSON');
  }
  if (text === undefined || Buffer.byteLength(text) > MAX_JOB_DATA_BYTES) {
    throw new JobError('job_bad_data', `job data must be JSON of at most ${MAX_JOB_DATA_BYTES} bytes`);
  }
  return JSON.parse(text) as unknown;
}

export const repeatRunId = (name: string, slot: number) => `repeat:${name}:${slot}`;
export const onceRunId = (name: string, key: string) => `once:${name}:${key}`;

/** The next slot strictly after `now` on the grid of `everyMs` (missed slots are not replayed). */
export const nextSlot = (now: number, everyMs: number) => Math.floor(now / everyMs) * everyMs + everyMs;

/** Delay before attempt `attempt + 1`: base, 2 base, 4 base… */
export const backoffDelay = (attempt: number, baseMs: number) => baseMs * 2 ** (attempt - 1);
