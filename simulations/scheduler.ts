import FakeTimers from '@sinonjs/fake-timers';

type InstalledClock = ReturnType<typeof FakeTimers.install>;

/**
 * The discrete-event scheduler and simulated clock. Time is integer milliseconds since the
 * start of the run; events run in (time, seq) order, seq being the order they were scheduled
 * in, so every tie is broken the same way on every run. Nothing here reads the real clock.
 *
 * While a run is in progress, @sinonjs/fake-timers replaces the global setTimeout, setInterval,
 * setImmediate and Date: XState's delayed transitions, opossum's timeouts and every other timer
 * of the code under test then live on this clock. The scheduler treats those timers as a second
 * event queue: before each of its own events it fires every fake timer due at or before it.
 */

/** Date.now() at simulated time 0: a fixed instant (2026-01-01T00:00:00Z), never the real one. */
export const SIM_EPOCH_MS = 1_767_225_600_000;
/** Events processed in one run at most: a runaway scenario fails instead of hanging the suite. */
export const MAX_EVENTS_PER_RUN = 2_000_000;
/** Fake timers fired at one instant at most (an interval of 0 would otherwise spin forever). */
export const FAKE_TIMER_LOOP_LIMIT = 100_000;

/** Call as `handle.cancel()`: the method belongs to its handle (not a detached function). */
export interface Scheduled {
  cancel(): void;
}

/** A scheduled event is its own handle: no closure per event. */
class Entry implements Scheduled {
  cancelled = false;
  constructor(
    readonly time: number,
    readonly seq: number,
    readonly label: string,
    readonly fn: () => void | Promise<void>,
  ) {}

  cancel(): void {
    this.cancelled = true;
  }
}

export class SchedulerError extends Error {}

export class Scheduler {
  private heap: Entry[] = [];
  private seq = 0;
  private clock: InstalledClock | null = null;
  /** Simulated milliseconds since the start of the run. */
  now = 0;
  /** Events run so far (own and fake-timer batches). */
  processed = 0;
  /**
   * Where errors of event handlers go (sync throws and rejected promises). Handlers are not
   * awaited: one that waits on a (fake) timer would otherwise block the very loop that fires it.
   */
  onError: (err: unknown) => void = (err) => {
    throw err;
  };

  /** Date.now() as the code under test sees it. */
  epochNow(): number {
    return SIM_EPOCH_MS + this.now;
  }

  at(time: number, label: string, fn: () => void | Promise<void>): Scheduled {
    if (!Number.isFinite(time)) throw new SchedulerError(`event ${label} scheduled at a non-finite time`);
    const entry = new Entry(Math.max(this.now, Math.ceil(time)), this.seq++, label, fn);
    this.push(entry);
    return entry;
  }

  after(delay: number, label: string, fn: () => void | Promise<void>): Scheduled {
    return this.at(this.now + Math.max(0, delay), label, fn);
  }

  /** Number of pending own events (cancelled ones included until they surface). */
  get pending(): number {
    return this.heap.length;
  }

  /**
   * Installs fake timers over the globals, on this clock. Only one simulation may run at a time
   * in a thread (the globals are the thread's): runs on one thread are serial by design; a
   * sweep with jobs > 1 gives each run of it to one of its worker threads.
   */
  installFakeTimers(): void {
    if (this.clock) return;
    this.clock = FakeTimers.install({
      now: SIM_EPOCH_MS + this.now,
      toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate', 'Date'],
      loopLimit: FAKE_TIMER_LOOP_LIMIT,
    });
  }

  uninstallFakeTimers(): void {
    this.clock?.uninstall();
    this.clock = null;
  }

  /** When the earliest fake timer is due (simulated ms), if any. */
  private nextFakeTimer(): number | undefined {
    const heap = (this.clock as unknown as { timerHeap?: { peek(): { callAt: number } | undefined } } | null)?.timerHeap;
    const first = heap?.peek();
    return first ? first.callAt - SIM_EPOCH_MS : undefined;
  }

  /** Moves the fake clock to `time`, firing the fake timers due by then (in their order). */
  private advanceFake(time: number): void {
    if (!this.clock) return;
    const delta = SIM_EPOCH_MS + time - this.clock.now;
    if (delta < 0) return;
    const due = this.nextFakeTimer();
    // No timer due by then: moving `now` is all tick() would do (it runs no job, fires nothing),
    // and it skips tick()'s search of every pending timer, made each time its earliest is later.
    if (due === undefined || due > time) this.clock.now += delta;
    else this.clock.tick(delta);
  }

  /**
   * Runs events until simulated time `until` (inclusive) or until `stop()` says so.
   * Async handlers run detached; their promise continuations run as microtasks in a fixed
   * order before the next event, so the whole run is still a function of the seed.
   */
  async run(until: number, stop: () => boolean = () => false): Promise<void> {
    for (;;) {
      if (stop()) return;
      if (this.processed > MAX_EVENTS_PER_RUN) throw new SchedulerError(`more than ${MAX_EVENTS_PER_RUN} events: runaway scenario`);
      const own = this.peekLive();
      const fake = this.nextFakeTimer();
      if (fake !== undefined && fake <= until && (own === undefined || fake <= own.time)) {
        this.now = Math.max(this.now, fake);
        this.advanceFake(this.now);
        this.processed++;
        await settle();
        continue;
      }
      if (own === undefined || own.time > until) {
        this.now = Math.max(this.now, until);
        this.advanceFake(this.now);
        return;
      }
      this.pop();
      this.now = own.time;
      this.advanceFake(this.now);
      this.processed++;
      try {
        const pending = own.fn();
        if (pending) pending.catch((err: unknown) => this.onError(err));
      } catch (err) {
        this.onError(err);
      }
      await settle();
    }
  }

  private peekLive(): Entry | undefined {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
    return this.heap[0];
  }

  // A binary min-heap on (time, seq).
  private less(a: Entry, b: Entry): boolean {
    return a.time < b.time || (a.time === b.time && a.seq < b.seq);
  }

  private push(e: Entry): void {
    const h = this.heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  private pop(): Entry | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && this.less(h[l]!, h[m]!)) m = l;
        if (r < h.length && this.less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

/** Lets promise continuations scheduled by the last event run before the next event. */
const SETTLE_ROUNDS = 8;
async function settle(): Promise<void> {
  for (let i = 0; i < SETTLE_ROUNDS; i++) await null;
}
