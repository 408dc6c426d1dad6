import type { AnyActorRef, AnyStateMachine, InspectionEvent } from 'xstate';
import type { TraceEvent } from './trace.ts';

/**
 * Turns XState inspection events into safe trace events. Pass `recorder.inspect` as the
 * `inspect` option of createRuntime (or createActor). Only state values, event types and the
 * details a machine's describer returns leave the actor: contexts and payloads never do.
 */
export type Describer = (context: unknown) => Record<string, string | number | boolean>;

/**
 * Bound on kept events. Past it, the oldest TRIM_FRACTION is compacted: its messages and faults
 * are dropped, but every actor's announcement and latest state stay, so a long-running process
 * still shows its whole actor tree (listeners see every event regardless).
 */
export const MAX_RECORDED_EVENTS = 20_000;
const TRIM_FRACTION = 0.25;

/** Keeps actor announcements and each actor's last state from `dropped`, in their order. */
export function compactEvents(dropped: readonly TraceEvent[]): TraceEvent[] {
  const lastState = new Map<string, number>();
  dropped.forEach((e, i) => {
    if (e.kind === 'state') lastState.set(e.actor, i);
  });
  return dropped.filter((e, i) => e.kind === 'actor' || (e.kind === 'state' && lastState.get(e.actor) === i));
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
  const events: TraceEvent[] = [];
  const listeners = new Set<(e: TraceEvent) => void>();
  const machines = new Map<string, AnyStateMachine>();
  const describers = new Map<string, Describer>();
  let seq = 0;

  const emit = (event: NewTraceEvent) => {
    const full = { seq: seq++, t: now(), ...event } as TraceEvent;
    events.push(full);
    if (events.length > MAX_RECORDED_EVENTS) {
      const dropped = events.splice(0, Math.ceil(MAX_RECORDED_EVENTS * TRIM_FRACTION));
      events.unshift(...compactEvents(dropped));
    }
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
