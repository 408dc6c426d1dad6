import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The runtime's Prometheus metrics, on a registry the runtime owns (never prom-client's global
 * one, so two runtimes in one process, or a host application, do not collide). Names:
 *   talos_sessions                               gauge    open sessions
 *   talos_calls_total{decision}                  counter  tool calls by decision (allow, deny, error)
 *   talos_call_duration_seconds{decision}        histogram end-to-end tool call latency
 *   talos_breaker_state{name}                    gauge    0 closed, 1 half-open, 2 open
 *   talos_queue_depth{queue}                     gauge    jobs or tasks waiting, delayed or running
 *   talos_supervisor_restarts_total{child}       counter  children restarted by the TGA
 *   talos_ready                                  gauge    1 ready, 0 not ready
 */
export const BREAKER_STATES = { closed: 0, halfOpen: 1, open: 2 } as const;
export type BreakerState = keyof typeof BREAKER_STATES;
/** Latency buckets (seconds): from a cached, inline decision to a slow upstream. */
export const CALL_DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** A scrape waits at most this long for collectors (queue depths read from Redis, …). */
export const COLLECT_TIMEOUT_MS = 1000;

export type Collector = () => Promise<void> | void;

export class TalosMetrics {
  readonly registry = new Registry();
  readonly sessions = new Gauge({ name: 'talos_sessions', help: 'Open sessions', registers: [this.registry] });
  readonly callsTotal = new Counter({
    name: 'talos_calls_total',
    help: 'Tool calls by decision',
    labelNames: ['decision'] as const,
    registers: [this.registry],
  });
  readonly callDuration = new Histogram({
    name: 'talos_call_duration_seconds',
    help: 'Tool call latency, end to end, by decision',
    labelNames: ['decision'] as const,
    buckets: CALL_DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly breakerState = new Gauge({
    name: 'talos_breaker_state',
    help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open',
    labelNames: ['name'] as const,
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({
    name: 'talos_queue_depth',
    help: 'Jobs or tasks waiting, delayed or running, by queue',
    labelNames: ['queue'] as const,
    registers: [this.registry],
  });
  readonly restarts = new Counter({
    name: 'talos_supervisor_restarts_total',
    help: 'Children restarted by the TGA',
    labelNames: ['child'] as const,
    registers: [this.registry],
  });
  readonly ready = new Gauge({ name: 'talos_ready', help: '1 when the runtime is ready', registers: [this.registry] });
  readonly #collectors: Collector[] = [];

  /** Records one finished tool call. */
  recordCall(decision: string, seconds: number): void {
    this.callsTotal.inc({ decision });
    this.callDuration.observe({ decision }, seconds);
  }

  setBreakerState(name: string, state: BreakerState): void {
    this.breakerState.set({ name }, BREAKER_STATES[state]);
  }

  /** Runs before every scrape, to refresh values read from elsewhere (queue depths). */
  addCollector(collector: Collector): void {
    this.#collectors.push(collector);
  }

  /** Keeps talos_queue_depth{queue} up to date from anything with a `depth()`. */
  trackQueue(queue: string, source: { depth(): Promise<{ waiting: number; active: number; delayed: number }> | { waiting: number; active: number; delayed: number } }): void {
    this.addCollector(async () => {
      const d = await source.depth();
      this.queueDepth.set({ queue }, d.waiting + d.active + d.delayed);
    });
  }

  /** Prometheus text exposition. A collector that fails or is slow leaves its last value. */
  async text(): Promise<string> {
    await Promise.all(
      this.#collectors.map((collect) => {
        let timer: ReturnType<typeof setTimeout> | undefined;
        return Promise.race([
          Promise.resolve()
            .then(collect)
            .catch(() => {}),
          new Promise<void>((resolve) => (timer = setTimeout(resolve, COLLECT_TIMEOUT_MS))),
        ]).finally(() => clearTimeout(timer));
      }),
    );
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

export const createMetrics = () => new TalosMetrics();
