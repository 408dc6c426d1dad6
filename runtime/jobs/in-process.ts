import { SPANS, withSpan } from '../telemetry/tracing.ts';
import { systemClock, type Clock } from './clock.ts';
import { JobError } from './errors.ts';
import {
  COMPLETED_RUNS_KEPT,
  DEFAULT_BACKOFF_MS,
  JOB_ATTEMPTS,
  backoffDelay,
  checkData,
  checkInterval,
  checkKey,
  checkName,
  nextSlot,
  onceRunId,
  repeatRunId,
  type JobHandler,
  type JobRun,
  type QueueDepth,
  type Scheduler,
  type SchedulerEvents,
} from './scheduler.ts';

/** Most runs waiting at once; past it `enqueue` refuses instead of growing without bound. */
export const MAX_PENDING_RUNS = 10_000;
/** Node's setTimeout fires at once (after 1 ms) for a delay above 2^31-1 ms (~24.8 days). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export interface InProcessOptions extends SchedulerEvents {
  clock?: Clock;
  backoffMs?: number;
}

interface Schedule {
  everyMs: number;
  data: unknown;
  timer?: unknown;
}

/**
 * The scheduler without Redis: same contract as the BullMQ adapter, state in memory. Runs that
 * are pending when the process stops are gone (nothing is durable here); scheduled jobs come
 * back because the runtime declares its schedules again at start.
 */
export class InProcessScheduler implements Scheduler {
  readonly kind = 'in-process' as const;
  readonly #clock: Clock;
  readonly #backoffMs: number;
  readonly #events: SchedulerEvents;
  readonly #schedules = new Map<string, Schedule>();
  readonly #handlers = new Map<string, JobHandler<any>>();
  readonly #queue: JobRun[] = [];
  readonly #retryTimers = new Map<unknown, JobRun>();
  /** runIds pending, retrying or running: never queued twice. */
  readonly #live = new Set<string>();
  /** Recently completed runIds (insertion-ordered, bounded). */
  readonly #completed = new Set<string>();
  #failed = 0;
  #started = false;
  #active: Promise<void> | undefined;

  constructor(options: InProcessOptions = {}) {
    this.#clock = options.clock ?? systemClock;
    this.#backoffMs = options.backoffMs ?? DEFAULT_BACKOFF_MS;
    this.#events = options;
  }

  async schedule(name: string, everyMs: number, data?: unknown): Promise<void> {
    checkName(name);
    checkInterval(everyMs);
    const clean = checkData(data);
    const existing = this.#schedules.get(name);
    if (existing?.timer !== undefined) this.#clock.clearTimeout(existing.timer);
    const schedule: Schedule = { everyMs, data: clean };
    this.#schedules.set(name, schedule);
    if (this.#started) this.#arm(name, schedule, true);
  }

  async unschedule(name: string): Promise<boolean> {
    const existing = this.#schedules.get(name);
    if (!existing) return false;
    if (existing.timer !== undefined) this.#clock.clearTimeout(existing.timer);
    this.#schedules.delete(name);
    return true;
  }

  async enqueue(name: string, data: unknown, key: string): Promise<void> {
    checkName(name);
    checkKey(key);
    const clean = checkData(data);
    if (!this.#started) throw new JobError('scheduler_stopped', 'the scheduler is not running');
    if (!this.#push({ name, runId: onceRunId(name, key), data: clean, slot: this.#clock.now(), attempt: 1 })) {
      throw new JobError('scheduler_overloaded', `more than ${MAX_PENDING_RUNS} runs pending`);
    }
  }

  onJob<D = unknown>(name: string, handler: JobHandler<D>): void {
    checkName(name);
    this.#handlers.set(name, handler);
  }

  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    for (const [name, schedule] of this.#schedules) this.#arm(name, schedule, true);
  }

  async stop(): Promise<void> {
    this.#started = false;
    for (const schedule of this.#schedules.values()) {
      if (schedule.timer !== undefined) this.#clock.clearTimeout(schedule.timer);
      schedule.timer = undefined;
    }
    for (const handle of this.#retryTimers.keys()) this.#clock.clearTimeout(handle);
    this.#retryTimers.clear();
    this.#queue.length = 0;
    this.#live.clear();
    await this.#active;
  }

  async depth(): Promise<QueueDepth> {
    return { waiting: this.#queue.length, active: this.#active ? 1 : 0, delayed: this.#retryTimers.size, failed: this.#failed };
  }

  isHealthy(): boolean {
    return true;
  }

  /** Queues the run of the current slot (when `now`) and arms the timer of the next one. */
  #arm(name: string, schedule: Schedule, now: boolean): void {
    const t = this.#clock.now();
    if (now) this.#push({ name, runId: repeatRunId(name, t - (t % schedule.everyMs)), data: schedule.data, slot: t - (t % schedule.everyMs), attempt: 1 });
    this.#wait(name, schedule, nextSlot(t, schedule.everyMs));
  }

  /** Arms the timer of `slot`, in steps of at most MAX_TIMER_MS (intervals go up to 30 days). */
  #wait(name: string, schedule: Schedule, slot: number): void {
    const delay = slot - this.#clock.now();
    schedule.timer = this.#clock.setTimeout(() => {
      if (!this.#started || this.#schedules.get(name) !== schedule) return;
      if (this.#clock.now() < slot) return this.#wait(name, schedule, slot); // a step, or a timer that fired early
      this.#push({ name, runId: repeatRunId(name, slot), data: schedule.data, slot, attempt: 1 });
      this.#arm(name, schedule, false);
    }, Math.min(delay, MAX_TIMER_MS));
  }

  /** Queues a run; false when the queue is full (a scheduled slot is then skipped, as a missed one). */
  #push(run: JobRun): boolean {
    if (this.#live.has(run.runId) || this.#completed.has(run.runId)) return true; // idempotent by runId
    if (this.#live.size >= MAX_PENDING_RUNS) return false;
    this.#live.add(run.runId);
    this.#queue.push(run);
    this.#pump();
    return true;
  }

  #pump(): void {
    if (this.#active || !this.#started) return;
    const run = this.#queue.shift();
    if (!run) return;
    this.#active = this.#execute(run).finally(() => {
      this.#active = undefined;
      this.#pump();
    });
  }

  async #execute(run: JobRun): Promise<void> {
    const handler = this.#handlers.get(run.name);
    try {
      if (!handler) throw new JobError('job_unknown', `no handler for job ${run.name}`);
      await withSpan(SPANS.job, { 'talos.job': run.name, 'talos.run_id': run.runId, 'talos.attempt': run.attempt }, () => handler({ ...run }));
    } catch (error) {
      const final = run.attempt >= JOB_ATTEMPTS;
      this.#events.onRunSettled?.(run, { ok: false, error, final });
      if (final || !this.#started) {
        this.#failed++;
        this.#live.delete(run.runId);
        return;
      }
      const retry = { ...run, attempt: run.attempt + 1 };
      const handle = this.#clock.setTimeout(() => {
        this.#retryTimers.delete(handle);
        this.#queue.push(retry);
        this.#pump();
      }, backoffDelay(run.attempt, this.#backoffMs));
      this.#retryTimers.set(handle, retry);
      return;
    }
    this.#live.delete(run.runId);
    this.#completed.add(run.runId);
    if (this.#completed.size > COMPLETED_RUNS_KEPT) this.#completed.delete(this.#completed.values().next().value!);
    this.#events.onRunSettled?.(run, { ok: true, final: true });
  }
}
