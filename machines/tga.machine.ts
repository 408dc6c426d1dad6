import { assign, enqueueActions, fromCallback, sendTo, setup, type AnyActorLogic } from 'xstate';
import type { BreakerState, ChildKind, TgaEvent } from '../actors/messages.ts';
import type { DriftFinding } from '../runtime/drift/index.ts';
import { DEFAULT_RESTART_POLICY, mayRestart, recentRestarts, restartDelay, type RestartPolicy } from './supervision.ts';

/**
 * The Talos Governance Agent: the root of every runtime's actor tree and its supervisor.
 * It starts the children it is given (and those added later: sessions, reconciled upstreams),
 * restarts a crashed child one-for-one, after a backoff, while the restart budget allows, and escalates past it:
 * the runtime turns not-ready (and the gateways stop taking new sessions) until an operator
 * resumes it. It records every circuit breaker's state and the findings of the drift monitor.
 * Pure: the children's logic, the drift monitor and the reporting effects are bound in
 * actors/tga; time comes from the injected `now`.
 *
 *   running --crash within budget--> running (child restarted after restartDelay(n))
 *   running --crash past budget--> escalated --tga.resume--> running
 *   any --tga.stop--> stopped
 */
export interface ChildSpec {
  id: string;
  kind: ChildKind;
  /** The actor logic's name in `setup({ actors })`: one per kind. */
  src: ChildKind;
  input?: unknown;
  /**
   * The child says `child.up` itself once its service runs (a server listening, a process
   * connected); until then it counts as `starting` (not ready). Otherwise it is up when spawned.
   */
  reportsUp?: boolean;
}

export interface ChildStatus {
  kind: ChildKind;
  status: 'starting' | 'up' | 'down';
  restarts: number;
  lastFault?: string;
  /** Set while a restart waits out its backoff: when it is due (`now` time). */
  restartAt?: number;
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
  /** Every breaker's last reported state, by name (`upstream:<name>`, `redis`, `audit`). */
  breakers: Record<string, BreakerState>;
  /** The latest drift check: its findings and the running configuration's digest. */
  drift: { checks: number; findings: DriftFinding[]; digest?: string };
}

/**
 * Operator controls: add a child, remove one, or restart one (a reload: it does not count
 * against the restart budget, which measures faults).
 */
export type ChildControl = { type: 'child.add'; spec: ChildSpec } | { type: 'child.remove'; id: string } | { type: 'child.restart'; id: string };

type CrashEvent = { type: `xstate.error.actor.${string}`; error: unknown };
/** Internal: a restart's backoff is over (a delayed event the TGA sends itself). */
type RespawnEvent = { type: 'child.respawn'; id: string };

const ERROR_PREFIX = 'xstate.error.actor.';
/** Most children one TGA supervises (sessions included); more are refused by `child.add`. */
export const MAX_CHILDREN = 10_000;
/** The drift monitor's systemId (the TGA forwards `drift.check` to it). */
export const DRIFT_MONITOR_ID = 'tga.drift';
/** Child logic placeholders; actors/tga provides the real ones. */
const unbound: AnyActorLogic = fromCallback(() => {});

function isSupervisedCrash(context: TgaContext, event: { type: string }): boolean {
  return event.type.startsWith(ERROR_PREFIX) && event.type.slice(ERROR_PREFIX.length) in context.specs;
}

function faultCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'crashed';
}

/** The id of a child's delayed respawn (explicit: it is cancelled by id). */
const respawnId = (id: string) => `respawn:${id}`;

const initialStatus = (spec: ChildSpec): ChildStatus => ({ kind: spec.kind, status: spec.reportsUp ? 'starting' : 'up', restarts: 0 });

export const tgaMachine = setup({
  types: {
    context: {} as TgaContext,
    events: {} as TgaEvent | ChildControl | CrashEvent | RespawnEvent,
    input: {} as TgaInput,
  },
  actors: {
    gateway: unbound,
    auditor: unbound,
    upstream: unbound,
    jobs: unbound,
    session: unbound,
    /** Runs drift checks on its interval and on `drift.check`; sends back `drift.report`. */
    driftMonitor: unbound,
  },
  actions: {
    /** Effect: release resources owned by the runtime (bound in actors/tga). */
    releaseResources: () => {},
    /** Effect: report an escalation (log, metric, trace); bound in actors/tga. */
    reportEscalation: (_, _params: { child: string; code: string }) => {},
    /** Effect: a child was restarted (metric talos_supervisor_restarts_total). */
    reportRestart: (_, _params: { child: string; code: string }) => {},
    /** Effect: a breaker changed state (metric talos_breaker_state, a span, a log line). */
    reportBreaker: (_, _params: { name: string; state: BreakerState }) => {},
    /** Effect: a drift check found differences (log, audit alert). */
    reportDrift: (_, _params: { findings: DriftFinding[] }) => {},
  },
}).createMachine({
  id: 'tga',
  context: ({ input }) => {
    const specs = Object.fromEntries((input.children ?? []).map((s) => [s.id, s]));
    return {
      specs,
      children: Object.fromEntries(Object.values(specs).map((s) => [s.id, initialStatus(s)])),
      restartTimes: [],
      policy: input.policy ?? DEFAULT_RESTART_POLICY,
      now: input.now ?? Date.now,
      breakers: {},
      drift: { checks: 0, findings: [] },
    };
  },
  initial: 'running',
  entry: enqueueActions(({ context, enqueue }) => {
    for (const spec of Object.values(context.specs)) {
      enqueue.spawnChild(spec.src, { id: spec.id, systemId: spec.id, input: spec.input });
    }
  }),
  invoke: { id: DRIFT_MONITOR_ID, systemId: DRIFT_MONITOR_ID, src: 'driftMonitor' },
  on: {
    'child.up': {
      actions: assign({
        children: ({ context, event }) => ({
          ...context.children,
          [event.id]: { ...(context.children[event.id] ?? { restarts: 0 }), kind: event.kind, status: 'up' },
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
    'child.remove': {
      guard: ({ context, event }) => event.id in context.specs,
      actions: enqueueActions(({ context, event, enqueue }) => {
        const { [event.id]: _spec, ...specs } = context.specs;
        const { [event.id]: _status, ...children } = context.children;
        enqueue.assign({ specs, children });
        enqueue.cancel(respawnId(event.id));
        enqueue.stopChild(event.id);
      }),
    },
    'child.restart': {
      guard: ({ context, event }) => event.id in context.specs && context.children[event.id]?.status !== 'down',
      actions: enqueueActions(({ context, event, enqueue }) => {
        const spec = context.specs[event.id]!;
        const { restartAt: _pending, ...status } = context.children[spec.id]!;
        enqueue.assign({
          children: { ...context.children, [spec.id]: { ...status, status: spec.reportsUp ? 'starting' : 'up' } },
        });
        // A reload during a backoff starts the child now, once.
        enqueue.cancel(respawnId(spec.id));
        enqueue.stopChild(spec.id);
        enqueue.spawnChild(spec.src, { id: spec.id, systemId: spec.id, input: spec.input });
      }),
    },
    'child.respawn': {
      // Only a restart still waiting (not one cancelled by a removal or a reload).
      guard: ({ context, event }) => event.id in context.specs && context.children[event.id]?.restartAt !== undefined,
      actions: enqueueActions(({ context, event, enqueue }) => {
        const spec = context.specs[event.id]!;
        const { restartAt: _due, ...status } = context.children[spec.id]!;
        enqueue.assign({ children: { ...context.children, [spec.id]: { ...status, status: spec.reportsUp ? 'starting' : 'up' } } });
        enqueue.spawnChild(spec.src, { id: spec.id, systemId: spec.id, input: spec.input });
      }),
    },
    'breaker.state': {
      actions: [
        assign({ breakers: ({ context, event }) => ({ ...context.breakers, [event.name]: event.state }) }),
        { type: 'reportBreaker', params: ({ event }) => ({ name: event.name, state: event.state }) },
      ],
    },
    'drift.report': {
      actions: [
        assign({
          drift: ({ context, event }) => ({ checks: context.drift.checks + 1, findings: event.findings, digest: event.digest }),
        }),
        {
          type: 'reportDrift',
          params: ({ event }) => ({ findings: event.findings }),
        },
      ],
    },
    'drift.check': { actions: sendTo(DRIFT_MONITOR_ID, { type: 'drift.check' }) },
    'tga.stop': '.stopped',
  },
  states: {
    running: {
      on: {
        'child.add': {
          // A new child (a session, a reconciled upstream); an id in use or past the limit is ignored.
          guard: ({ context, event }) => !(event.spec.id in context.specs) && Object.keys(context.specs).length < MAX_CHILDREN,
          actions: enqueueActions(({ context, event, enqueue }) => {
            const spec = event.spec;
            enqueue.assign({
              specs: { ...context.specs, [spec.id]: spec },
              children: { ...context.children, [spec.id]: initialStatus(spec) },
            });
            enqueue.spawnChild(spec.src, { id: spec.id, systemId: spec.id, input: spec.input });
          }),
        },
        'xstate.error.actor.*': [
          {
            // One-for-one: only the crashed child is stopped and, after its backoff, started again with its spec.
            guard: ({ context, event }) => isSupervisedCrash(context, event) && mayRestart(context.restartTimes, context.now(), context.policy),
            actions: enqueueActions(({ context, event, enqueue }) => {
              const id = event.type.slice(ERROR_PREFIX.length);
              const now = context.now();
              const previous = context.children[id]!;
              const code = faultCode((event as CrashEvent).error);
              const restartTimes = [...recentRestarts(context.restartTimes, now, context.policy), now];
              // Back off (longer for each restart in the window): a dependency away for a moment
              // must not spend the whole budget in a few milliseconds.
              const delay = restartDelay(restartTimes.length);
              enqueue.assign({
                restartTimes,
                children: {
                  ...context.children,
                  [id]: { ...previous, status: 'starting', restarts: previous.restarts + 1, lastFault: code, restartAt: now + delay },
                },
              });
              enqueue.stopChild(id);
              enqueue.raise({ type: 'child.respawn', id }, { id: respawnId(id), delay });
              enqueue({ type: 'reportRestart', params: { child: id, code } });
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
    /** The restart budget is spent: not ready, no new sessions, until an operator resumes. */
    escalated: {
      on: {
        'xstate.error.actor.*': {
          // Further crashes while escalated: the child stays down (no restarts past the budget).
          guard: ({ context, event }) => isSupervisedCrash(context, event),
          actions: assign({
            children: ({ context, event }) => {
              const id = event.type.slice(ERROR_PREFIX.length);
              return { ...context.children, [id]: { ...context.children[id]!, status: 'down', lastFault: faultCode((event as CrashEvent).error) } };
            },
          }),
        },
        'tga.resume': {
          target: 'running',
          actions: enqueueActions(({ context, enqueue }) => {
            const children = { ...context.children };
            for (const [id, status] of Object.entries(context.children)) {
              if (status.status !== 'down') continue;
              const spec = context.specs[id]!;
              children[id] = { ...status, status: spec.reportsUp ? 'starting' : 'up' };
              enqueue.stopChild(id);
              enqueue.spawnChild(spec.src, { id: spec.id, systemId: spec.id, input: spec.input });
            }
            enqueue.assign({ children, restartTimes: [], escalation: undefined });
          }),
        },
      },
    },
    stopped: {
      type: 'final',
      entry: 'releaseResources',
    },
  },
});

type TgaSnapshotLike = { value: unknown; context: TgaContext };

/** True while the TGA runs (not escalated) and every child it owns is up. */
export function isReady(snapshot: TgaSnapshotLike): boolean {
  return snapshot.value === 'running' && Object.values(snapshot.context.children).every((c) => c.status === 'up');
}

/** True while the gateways may take new sessions: the TGA runs and has not escalated. */
export function acceptsSessions(snapshot: TgaSnapshotLike & { status?: string }): boolean {
  return snapshot.value === 'running' && (snapshot.status === undefined || snapshot.status === 'active');
}
