import { assign, enqueueActions, fromCallback, setup, type AnyActorLogic } from 'xstate';
import type { ChildKind, TgaEvent } from '../actors/messages.ts';
import { DEFAULT_RESTART_POLICY, mayRestart, recentRestarts, type RestartPolicy } from './supervision.ts';

/**
 * The Talos Governance Agent: the root of every runtime's actor tree and its supervisor.
 * It starts the children it is given, restarts a crashed child one-for-one while the restart
 * budget allows, and escalates past it: the runtime turns not-ready (and the gateways stop
 * taking new sessions) until an operator intervenes. Pure: the children's logic is bound in
 * actors/tga; time comes from the injected `now`.
 */
export interface ChildSpec {
  id: string;
  kind: ChildKind;
  /** The actor logic's name in `setup({ actors })`: one per kind. */
  src: ChildKind;
  input?: unknown;
}

export interface ChildStatus {
  kind: ChildKind;
  status: 'up' | 'down';
  restarts: number;
  lastFault?: string;
}

export interface TgaInput {
  children?: ChildSpec[];
  policy?: RestartPolicy;
  now?: () => number;
}

export interface TgaContext {
  specs: Record<string, ChildSpec>;
  children: Record<string, ChildStatus>;
  /** Times of recent restarts (all children: the budget is the supervisor's). */
  restartTimes: number[];
  policy: RestartPolicy;
  now: () => number;
  escalation?: { child: string; code: string };
}

type CrashEvent = { type: `xstate.error.actor.${string}`; error: unknown };

const ERROR_PREFIX = 'xstate.error.actor.';
/** Child logic placeholders; actors/tga provides the real ones. */
const unbound: AnyActorLogic = fromCallback(() => {});

function isSupervisedCrash(context: TgaContext, event: { type: string }): boolean {
  return event.type.startsWith(ERROR_PREFIX) && event.type.slice(ERROR_PREFIX.length) in context.specs;
}

function faultCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'crashed';
}

export const tgaMachine = setup({
  types: {
    context: {} as TgaContext,
    events: {} as TgaEvent | CrashEvent,
    input: {} as TgaInput,
  },
  actors: { gateway: unbound, auditor: unbound, upstream: unbound, jobs: unbound, session: unbound },
  actions: {
    /** Effect: release resources owned by the runtime (bound in actors/tga). */
    releaseResources: () => {},
    /** Effect: report an escalation (log, metric, trace); bound in actors/tga. */
    reportEscalation: (_, _params: { child: string; code: string }) => {},
  },
}).createMachine({
  id: 'tga',
  context: ({ input }) => {
    const specs = Object.fromEntries((input.children ?? []).map((s) => [s.id, s]));
    return {
      specs,
      children: Object.fromEntries(
        Object.values(specs).map((s) => [s.id, { kind: s.kind, status: 'up', restarts: 0 } satisfies ChildStatus]),
      ),
      restartTimes: [],
      policy: input.policy ?? DEFAULT_RESTART_POLICY,
      now: input.now ?? Date.now,
    };
  },
  initial: 'running',
  entry: enqueueActions(({ context, enqueue }) => {
      for (const spec of Object.values(context.specs)) {
        enqueue.spawnChild(spec.src, { id: spec.id, systemId: spec.id, input: spec.input });
      }
    }),
  on: {
    'child.up': {
      actions: assign({
        children: ({ context, event }) => ({
          ...context.children,
          [event.id]: { ...(context.children[event.id] ?? { restarts: 0 }), kind: event.kind, status: 'up', lastFault: undefined },
        }),
      }),
    },
    'child.fault': {
      actions: assign({
        children: ({ context, event }) => ({
          ...context.children,
          [event.id]: { ...(context.children[event.id] ?? { restarts: 0 }), kind: event.kind, status: 'down', lastFault: event.code },
        }),
      }),
    },
    'tga.stop': '.stopped',
  },
  states: {
    running: {
      on: {
        'xstate.error.actor.*': [
          {
            // One-for-one: only the crashed child is stopped and started again, with its spec.
            guard: ({ context, event }) => isSupervisedCrash(context, event) && mayRestart(context.restartTimes, context.now(), context.policy),
            actions: enqueueActions(({ context, event, enqueue }) => {
      const id = event.type.slice(ERROR_PREFIX.length);
      const spec = context.specs[id]!;
      const now = context.now();
      const previous = context.children[id]!;
      enqueue.assign({
        restartTimes: [...recentRestarts(context.restartTimes, now, context.policy), now],
        children: {
          ...context.children,
          [id]: { ...previous, status: 'up', restarts: previous.restarts + 1, lastFault: faultCode((event as CrashEvent).error) },
        },
      });
      enqueue.stopChild(id);
      enqueue.spawnChild(spec.src, { id: spec.id, systemId: spec.id, input: spec.input });
    }),
          },
          {
            guard: ({ context, event }) => isSupervisedCrash(context, event),
            target: 'escalated',
            actions: enqueueActions(({ context, event, enqueue }) => {
      const id = event.type.slice(ERROR_PREFIX.length);
      const code = faultCode((event as CrashEvent).error);
      enqueue.assign({
        escalation: { child: id, code },
        children: { ...context.children, [id]: { ...context.children[id]!, status: 'down', lastFault: code } },
      });
      enqueue({ type: 'reportEscalation', params: { child: id, code } });
    }),
          },
        ],
      },
    },
    /** The restart budget is spent: not ready, no new sessions, until an operator acts. */
    escalated: {},
    stopped: {
      type: 'final',
      entry: 'releaseResources',
    },
  },
});

export function isReady(snapshot: { value: unknown; context: TgaContext }): boolean {
  return snapshot.value === 'running' && Object.values(snapshot.context.children).every((c) => c.status === 'up');
}
