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

type Body = TraceEvent extends infer E ? (E extends TraceEvent ? Omit<E, 'seq' | 't'> : never) : never;

export class TraceWriter {
  readonly events: TraceEvent[] = [];
  private seq = 0;
  private dropped = 0;
  private readonly actorNames = new Map<string, string>();

  constructor(
    readonly header: TraceHeader,
    private readonly now: () => number,
  ) {}

  static header(scenario: string, seed: number): TraceHeader {
    return { format: TRACE_FORMAT, v: TRACE_VERSION, source: `sim:${scenario}`, seed };
  }

  emit(body: Body): void {
    if (this.events.length >= MAX_TRACE_EVENTS) {
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

  get droppedEvents(): number {
    return this.dropped;
  }

  encode(): string {
    return encodeTrace(this.header, this.events);
  }
}

export function traceHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}
