import { TalosError } from '../errors.ts';
import { parseJson } from '../encoding/json.ts';

/**
 * The trace: what the inspector shows and what a simulation writes, one format for both.
 * A trace is JSON Lines: a header line, then one event per line in order. Events carry only
 * what is safe to show: actor ids, state values, event *types*, public details a machine
 * chose to describe; never event payloads, contexts, keys or plaintext.
 */
export const TRACE_FORMAT = 'talos-trace';
export const TRACE_VERSION = 1;

export interface TraceHeader {
  format: typeof TRACE_FORMAT;
  v: typeof TRACE_VERSION;
  /** What produced it: 'live' or 'sim:<scenario>'. */
  source: string;
  seed?: number;
}

interface Base {
  /** Position in the trace, from 0. */
  seq: number;
  /** Milliseconds, on the clock of whoever recorded (simulated or real). */
  t: number;
}

/** An actor came into being. `machine` names its machine definition when it is one. */
export interface ActorEvent extends Base {
  kind: 'actor';
  actor: string;
  parent?: string;
  systemId?: string;
  machine?: string;
  /** The logic's name when it was invoked by name (e.g. a promise actor 'process'). */
  name?: string;
}

/** An actor's state changed. `details` are the machine's own safe description of itself. */
export interface StateEvent extends Base {
  kind: 'state';
  actor: string;
  value: unknown;
  status: string;
  details?: Record<string, string | number | boolean>;
}

/** A message from one actor to another (or from outside, `from` absent): the type only. */
export interface MessageEvent extends Base {
  kind: 'message';
  from?: string;
  to: string;
  type: string;
}

/** A fault injected or observed (simulations). */
export interface FaultEvent extends Base {
  kind: 'fault';
  fault: string;
  target?: string;
  detail?: string;
}

export type TraceEvent = ActorEvent | StateEvent | MessageEvent | FaultEvent;

export function encodeTrace(header: TraceHeader, events: readonly TraceEvent[]): string {
  return [header, ...events].map((line) => JSON.stringify(line)).join('\n') + '\n';
}

export class TraceError extends TalosError {}

/** Parses a trace file, refusing anything that is not one (with the failing line number). */
export function decodeTrace(text: string): { header: TraceHeader; events: TraceEvent[] } {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const parse = (line: string, n: number) => {
    try {
      return parseJson(line, { allowFloats: true }) as Record<string, unknown>;
    } catch {
      throw new TraceError('trace_bad_line', `line ${n + 1} of the trace is not valid JSON`);
    }
  };
  if (lines.length === 0) throw new TraceError('trace_empty', 'the trace file is empty');
  // A line may be valid JSON yet not an object (`null`, `3`, `[]`): refuse it, never read fields off it.
  const isObject = (v: unknown) => typeof v === 'object' && v !== null && !Array.isArray(v);
  const header = parse(lines[0]!, 0);
  if (!isObject(header) || header.format !== TRACE_FORMAT || header.v !== TRACE_VERSION) {
    throw new TraceError('trace_bad_header', `not a ${TRACE_FORMAT} v${TRACE_VERSION} file`);
  }
  const kinds = new Set(['actor', 'state', 'message', 'fault']);
  const events = lines.slice(1).map((line, i) => {
    const e = parse(line, i + 1);
    if (!isObject(e) || !kinds.has(e.kind as string) || typeof e.seq !== 'number' || typeof e.t !== 'number') {
      throw new TraceError('trace_bad_event', `line ${i + 2} is not a trace event`);
    }
    return e as unknown as TraceEvent;
  });
  return { header: header as unknown as TraceHeader, events };
}
