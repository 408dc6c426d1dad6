import { Queue, Worker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { SPANS, withSpan } from '../telemetry/tracing.ts';
import { JobError } from './errors.ts';
import {
  COMPLETED_RUNS_KEPT,
  DEFAULT_BACKOFF_MS,
  JOB_ATTEMPTS,
  checkData,
  checkInterval,
  checkKey,
  checkName,
  onceRunId,
  type JobHandler,
  type JobRun,
  type QueueDepth,
  type Scheduler,
  type SchedulerEvents,
} from './scheduler.ts';

/** A scheduler job's id is `repeat:<scheduler id>:<slot ms>`: the slot is read from there. */
const REPEAT_ID = /^repeat:[a-z0-9-]+:(\d+)$/;
function slotOf(job: Job): number {
  const match = REPEAT_ID.exec(job.id ?? '');
  return match ? Number(match[1]) : job.timestamp;
}

export const DEFAULT_QUEUE_NAME = 'talos-jobs';
export const DEFAULT_PREFIX = 'talos';
/** A run held by a process that died is re-delivered after its lock lapses (BullMQ's stall check). */
export const DEFAULT_LOCK_MS = 30_000;
/** How many times one run may be found stalled before it counts as failed. */
export const MAX_STALLED_COUNT = 3;
const FAILED_RUNS_KEPT = 1000;

export interface BullmqSchedulerOptions extends SchedulerEvents {
  /** redis://… of a server with `maxmemory-policy noeviction` (and AOF for durability). */
  url: string;
  queueName?: string;
  prefix?: string;
  backoffMs?: number;
  lockDurationMs?: number;
}

/**
 * Scheduler on BullMQ Job Schedulers (`upsertJobScheduler`): durable in Redis, shared by every
 * runtime process on the same queue. The Redis connection uses `maxRetriesPerRequest: null`, so
 * commands issued while Redis is down wait for it to return instead of failing: a run enqueued
 * during an outage is stored when Redis is back, and workers resume on their own.
 */
export class BullmqScheduler implements Scheduler {
  readonly kind = 'bullmq' as const;
  readonly #options: BullmqSchedulerOptions;
  readonly #connection: Redis;
  readonly #queue: Queue;
  readonly #handlers = new Map<string, JobHandler<any>>();
  #worker: Worker | undefined;
  #stopped = false;
  /** The schedules this process declared: upserted again whenever Redis comes back. */
  readonly #declared = new Map<string, { everyMs: number; data: unknown }>();
  #readyOnce = false;
  /** Last connection error, kept for diagnostics (never thrown from an event handler). */
  lastError: Error | undefined;

  constructor(options: BullmqSchedulerOptions) {
    this.#options = options;
    this.#connection = new Redis(options.url, { maxRetriesPerRequest: null });
    this.#connection.on('error', (err: Error) => (this.lastError = err));
    // A Redis that restarted without persistence has lost the schedulers: declare them again
    // (an upsert, so a Redis that kept them is unchanged).
    this.#connection.on('ready', () => {
      if (!this.#readyOnce) {
        this.#readyOnce = true;
        return;
      }
      for (const [name, s] of this.#declared) {
        this.#upsert(name, s.everyMs, s.data).catch((err: Error) => (this.lastError = err));
      }
    });
    this.#queue = new Queue(options.queueName ?? DEFAULT_QUEUE_NAME, {
      connection: this.#connection,
      prefix: options.prefix ?? DEFAULT_PREFIX,
    });
    this.#queue.on('error', (err: Error) => (this.lastError = err));
  }

  #jobOptions() {
    return {
      attempts: JOB_ATTEMPTS,
      backoff: { type: 'exponential' as const, delay: this.#options.backoffMs ?? DEFAULT_BACKOFF_MS },
      removeOnComplete: { count: COMPLETED_RUNS_KEPT },
      removeOnFail: { count: FAILED_RUNS_KEPT },
    };
  }

  async schedule(name: string, everyMs: number, data?: unknown): Promise<void> {
    checkName(name);
    checkInterval(everyMs);
    const clean = checkData(data);
    this.#checkRunning();
    this.#declared.set(name, { everyMs, data: clean });
    await this.#upsert(name, everyMs, clean);
  }

  #upsert(name: string, everyMs: number, data: unknown) {
    return this.#queue.upsertJobScheduler(name, { every: everyMs }, { name, data, opts: this.#jobOptions() });
  }

  async unschedule(name: string): Promise<boolean> {
    checkName(name);
    this.#declared.delete(name);
    return this.#queue.removeJobScheduler(name);
  }

  async enqueue(name: string, data: unknown, key: string): Promise<void> {
    checkName(name);
    checkKey(key);
    const clean = checkData(data);
    if (!this.#worker) throw new JobError('scheduler_stopped', 'the scheduler is not running');
    const jobId = onceRunId(name, key);
    // A run that failed for good is kept (removeOnFail) under its id, and add() would then do
    // nothing: remove it so the key runs again (SPEC 10.2 refuses only pending, running and
    // completed ids, as the in-process adapter does).
    const previous = await this.#queue.getJob(jobId);
    // A remove refused (the job re-added and taken by a concurrent enqueue) leaves add() a no-op.
    if (previous && (await previous.isFailed())) await previous.remove().catch(() => {});
    // A custom job id makes the add idempotent: Redis keeps one job per id.
    await this.#queue.add(name, clean, { ...this.#jobOptions(), jobId });
  }

  onJob<D = unknown>(name: string, handler: JobHandler<D>): void {
    checkName(name);
    this.#handlers.set(name, handler);
  }

  async start(): Promise<void> {
    this.#checkRunning();
    if (this.#worker) return;
    const lockDuration = this.#options.lockDurationMs ?? DEFAULT_LOCK_MS;
    const worker = new Worker(this.#queue.name, (job) => this.#process(job), {
      connection: this.#connection,
      prefix: this.#options.prefix ?? DEFAULT_PREFIX,
      concurrency: 1,
      lockDuration,
      stalledInterval: lockDuration,
      maxStalledCount: MAX_STALLED_COUNT,
      autorun: true,
    });
    worker.on('error', (err: Error) => (this.lastError = err));
    worker.on('completed', (job) => this.#options.onRunSettled?.(this.#runOf(job), { ok: true, final: true }));
    worker.on('failed', (job, error) => {
      if (!job) return;
      const final = job.attemptsMade >= (job.opts.attempts ?? 1);
      // attemptsMade already counts this failure: report the attempt that failed.
      this.#options.onRunSettled?.({ ...this.#runOf(job), attempt: job.attemptsMade }, { ok: false, error, final });
    });
    this.#worker = worker;
    await worker.waitUntilReady();
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    const worker = this.#worker;
    this.#worker = undefined;
    // With Redis unreachable a graceful close would wait for it forever: force it (the run in
    // flight, if any, is re-delivered after its lock lapses, as after a crash).
    const force = this.#connection.status !== 'ready';
    await worker?.close(force);
    await this.#queue.close();
    this.#connection.disconnect();
  }

  async depth(): Promise<QueueDepth> {
    const c = await this.#queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      failed: c.failed ?? 0,
    };
  }

  isHealthy(): boolean {
    return !this.#stopped && this.#connection.status === 'ready';
  }

  #checkRunning(): void {
    if (this.#stopped) throw new JobError('scheduler_stopped', 'the scheduler is stopped');
  }

  #runOf(job: Job): JobRun {
    return {
      name: job.name,
      runId: job.id ?? '',
      data: job.data as unknown,
      slot: slotOf(job),
      attempt: job.attemptsMade + 1,
    };
  }

  async #process(job: Job): Promise<void> {
    const handler = this.#handlers.get(job.name);
    if (!handler) throw new JobError('job_unknown', `no handler for job ${job.name}`);
    const run = this.#runOf(job);
    await withSpan(SPANS.job, { 'talos.job': run.name, 'talos.run_id': run.runId, 'talos.attempt': run.attempt }, () => handler(run));
  }
}
