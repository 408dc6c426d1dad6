import { createHash } from 'node:crypto';
import { encodeTrace, TRACE_FORMAT, TRACE_VERSION, type TraceEvent, type TraceHeader } from '../runtime/inspect/trace.ts';
import type { Recorder } from '../runtime/inspect/recorder.ts';

/**
 * Collects a run's trace in the inspector's format (runtime/inspect/trace.ts): header
 * `source: 'sim:<scenario>'` with the seed, then actor / state / message / fault events stamped
 * with simulated time. XState actors are named by their systemId, or by their order of first
 * appearance in this run: xstate's own session ids come from a process-wide counter and would
 * make two runs of the same seed differ.
 */
export const MAX_TRACE_EVENTS = 200_000;

/** The fault event that ends a trace cut at its cap: without it a truncated trace looks complete. */
export const TRUNCATED_FAULT = 'trace-truncated';

type Body = TraceEvent extends infer E ? (E extends TraceEvent ? Omit<E, 'seq' | 't'> : never) : never;

export class TraceWriter {
  readonly events: TraceEvent[] = [];
  private seq = 0;
  private dropped = 0;
  /** Set by finish(): what is written after the run (its verdict) is kept past the cap. */
  private finished = false;
  private readonly actorNames = new Map<string, string>();

  constructor(
    readonly header: TraceHeader,
    private readonly now: () => number,
    /** Events kept while the run goes on (tests set a small one). */
    private readonly maxEvents = MAX_TRACE_EVENTS,
  ) {}

  static header(scenario: string, seed: number): TraceHeader {
    return { format: TRACE_FORMAT, v: TRACE_VERSION, source: `sim:${scenario}`, seed };
  }

  emit(body: Body): void {
    if (this.events.length >= this.maxEvents && !this.finished) {
      this.dropped++;
      return;
    }
    this.events.push({ seq: this.seq++, t: this.now(), ...body } as TraceEvent);
  }

  actor(actor: string, machine?: string): void {
    this.emit({ kind: 'actor', actor, ...(machine ? { machine } : {}) });
  }

  state(actor: string, value: string, status = 'active', details?: Record<string, string | number | boolean>): void {
    this.emit({ kind: 'state', actor, value, status, ...(details ? { details } : {}) });
  }

  message(from: string, to: string, type: string): void {
    this.emit({ kind: 'message', from, to, type });
  }

  fault(fault: string, target?: string, detail?: string): void {
    this.emit({ kind: 'fault', fault, ...(target ? { target } : {}), ...(detail ? { detail } : {}) });
  }

  /** Copies an XState recorder's events into this trace, with run-stable actor names. */
  follow(recorder: Recorder): () => void {
    return recorder.subscribe((e) => {
      const { seq: _s, t: _t, ...body } = e;
      const named = { ...body } as Record<string, unknown>;
      if (e.kind === 'actor') this.actorNames.set(e.actor, e.systemId ?? `xstate-${this.actorNames.size + 1}`);
      for (const k of ['actor', 'parent', 'from', 'to'] as const) {
        const v = named[k];
        if (typeof v === 'string') named[k] = this.actorNames.get(v) ?? v;
      }
      this.emit(named as Body);
    });
  }

  /**
   * The run is over: the events written from now on (the runner's `violation` fault) are kept
   * even past the cap, so a long failing run still says why it failed.
   */
  finish(): void {
    this.finished = true;
  }

  get droppedEvents(): number {
    return this.dropped;
  }

  /** The trace file; one cut at the cap ends with a fault event saying how many events it lost. */
  encode(): string {
    if (this.dropped === 0) return encodeTrace(this.header, this.events);
    const detail = `${this.dropped} events not recorded: the trace keeps the run's first ${this.maxEvents}`;
    const note = { seq: this.seq, t: this.now(), kind: 'fault', fault: TRUNCATED_FAULT, detail } as const;
    return encodeTrace(this.header, [...this.events, note]);
  }
}

export function traceHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
