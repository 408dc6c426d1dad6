import type { AnyActorRef, AnyStateMachine, InspectionEvent } from 'xstate';
import type { StateEvent, TraceEvent } from './trace.ts';

/**
 * Turns XState inspection events into safe trace events. Pass `recorder.inspect` as the
 * `inspect` option of createRuntime (or createActor). Only state values, event types and the
 * details a machine's describer returns leave the actor: contexts and payloads never do.
 */
export type Describer = (context: unknown) => Record<string, string | number | boolean>;

/**
 * Bound on kept events. Past it, the events are compacted to KEEP_FRACTION of the bound (so the
 * O(n) compaction runs at most once per MAX_RECORDED_EVENTS / 4 new events): the newest events
 * stay in full; from older history only live actors (not yet done, stopped or failed) keep
 * their announcement and latest state, at most a quarter of the bound of them, newest first.
 * A long-running process still shows its live actor tree, and one promise actor per operation
 * does not grow the kept events (listeners see every event regardless).
 */
export const MAX_RECORDED_EVENTS = 20_000;
const KEEP_FRACTION = 0.75;

/**
 * Compacts `events` to at most `limit` (see MAX_RECORDED_EVENTS). The page's compact() is the
 * same algorithm in browser JavaScript: keep the two in step.
 */
export function compactEvents(events: readonly TraceEvent[], limit: number): TraceEvent[] {
  if (events.length <= limit) return events.slice();
  // The newest half of the room is kept in full; what came before it is history.
  const historyEnd = events.length - Math.floor(limit / 2);
  const lastState = new Map<string, number>();
  for (let i = 0; i < historyEnd; i++) {
    const e = events[i]!;
    if (e.kind === 'state') lastState.set(e.actor, i);
  }
  const keep = new Uint8Array(historyEnd);
  let kept = events.length - historyEnd;
  // Live actors from history, newest first, at most limit / 4 of them (two events each).
  let actors = 0;
  for (let i = historyEnd - 1; i >= 0 && actors < Math.max(1, Math.floor(limit / 4)); i--) {
    const e = events[i]!;
    if (e.kind !== 'actor') continue;
    const s = lastState.get(e.actor);
    if (s !== undefined && (events[s] as StateEvent).status !== 'active') continue; // finished
    actors++;
    keep[i] = 1;
    kept++;
    if (s !== undefined) {
      keep[s] = 1;
      kept++;
    }
  }
  // Whatever room is left goes to the newest history, in full.
  for (let i = historyEnd - 1; i >= 0 && kept < limit; i--) {
    if (!keep[i]) {
      keep[i] = 1;
      kept++;
    }
  }
  const out: TraceEvent[] = [];
  for (let i = 0; i < historyEnd; i++) if (keep[i]) out.push(events[i]!);
  for (let i = historyEnd; i < events.length; i++) out.push(events[i]!);
  return out;
}

type NewTraceEvent = TraceEvent extends infer E ? (E extends TraceEvent ? Omit<E, 'seq' | 't'> : never) : never;

export interface Recorder {
  inspect: (event: InspectionEvent) => void;
  /** Machines whose graphs the inspector can draw, by machine id. */
  machines: Map<string, AnyStateMachine>;
  events(): readonly TraceEvent[];
  subscribe(listener: (event: TraceEvent) => void): () => void;
  /** Registers a machine definition and, optionally, how to describe its context safely. */
  register(machine: AnyStateMachine, describe?: Describer): void;
  /** Whether a describer is registered for this machine id. */
  describes(machineId: string): boolean;
}

export function createRecorder(options: { now?: () => number } = {}): Recorder {
  const now = options.now ?? Date.now;
  let events: TraceEvent[] = [];
  const listeners = new Set<(e: TraceEvent) => void>();
  const machines = new Map<string, AnyStateMachine>();
  const describers = new Map<string, Describer>();
  let seq = 0;

  const emit = (event: NewTraceEvent) => {
    const full = { seq: seq++, t: now(), ...event } as TraceEvent;
    events.push(full);
    if (events.length > MAX_RECORDED_EVENTS) events = compactEvents(events, Math.floor(MAX_RECORDED_EVENTS * KEEP_FRACTION));
    for (const l of listeners) l(full);
  };

  const machineOf = (ref: AnyActorRef): AnyStateMachine | undefined => {
    const logic = (ref as { logic?: unknown }).logic as AnyStateMachine | undefined;
    return logic && typeof logic === 'object' && 'root' in logic ? logic : undefined;
  };

  const unannounced = new Set<AnyActorRef>();
  const announce = (ref: AnyActorRef & { systemId?: string }) => {
    if (!unannounced.delete(ref)) return;
    if (ref._parent) announce(ref._parent);
    const machine = machineOf(ref);
    if (machine && !machines.has(machine.id)) machines.set(machine.id, machine);
    emit({
      kind: 'actor',
      actor: ref.sessionId,
      ...(ref._parent ? { parent: ref._parent.sessionId } : {}),
      ...(ref.systemId ? { systemId: ref.systemId } : {}),
      ...(machine ? { machine: machine.id } : {}),
      ...(typeof ref.src === 'string' ? { name: ref.src } : {}),
    });
  };

  return {
    machines,
    describes: (machineId) => describers.has(machineId),
    register(machine, describe) {
      machines.set(machine.id, machine);
      if (describe) describers.set(machine.id, describe);
    },
    inspect(ie) {
      const ref = ie.actorRef as AnyActorRef & { systemId?: string };
      switch (ie.type) {
        case '@xstate.actor':
          // The systemId is registered after this event: announce the actor on first sight.
          unannounced.add(ref);
          return;
        case '@xstate.snapshot': {
          announce(ref);
          const snap = ie.snapshot as { value?: unknown; status: string; context?: unknown };
          const machine = machineOf(ref);
          const describe = machine ? describers.get(machine.id) : undefined;
          emit({
            kind: 'state',
            actor: ref.sessionId,
            value: snap.value ?? null,
            status: snap.status,
            ...(describe ? { details: describe(snap.context) } : {}),
          });
          return;
        }
        case '@xstate.event': {
          // xstate.init and internal timers are noise in a sequence view.
          if (ie.event.type.startsWith('xstate.')) return;
          announce(ref);
          if (ie.sourceRef) announce(ie.sourceRef as AnyActorRef);
          emit({
            kind: 'message',
            ...(ie.sourceRef ? { from: (ie.sourceRef as AnyActorRef).sessionId } : {}),
            to: ref.sessionId,
            type: ie.event.type,
          });
          return;
        }
        default:
          return;
      }
    },
    events: () => events,
    subscribe(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };
}
