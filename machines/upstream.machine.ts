import { assign, fromPromise, setup } from 'xstate';

/**
 * One upstream MCP server's lifecycle. Pure: `connect` (start the server or open the HTTP
 * session, list and pin its tools), `disconnect`, and the reporting actions are bound in
 * actors/upstream. The circuit breaker around calls is separate (opossum, in the actor): this
 * machine decides only whether a connection exists and when to try again.
 *
 *   connecting --ok--> ready --closed--> backoff --delay--> connecting
 *        \--error--> backoff (attempts+1; after MAX_CONNECT_ATTEMPTS in a row: failed)
 *   any --upstream.stop--> stopping --> stopped
 */

/** Consecutive failed connection attempts before the upstream is reported failed to the TGA. */
export const MAX_CONNECT_ATTEMPTS = 8;
/** First retry delay; doubled per failed attempt up to MAX_BACKOFF_MS. */
export const BASE_BACKOFF_MS = 100;
export const MAX_BACKOFF_MS = 5_000;

export function backoffDelay(attempts: number): number {
  return Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.max(0, attempts - 1));
}

export interface UpstreamContext {
  name: string;
  attempts: number;
  connects: number;
  lastError?: string;
  drift: { tool: string; pinned: string; seen: string }[];
}

export type UpstreamEvent =
  | { type: 'upstream.closed' }
  | { type: 'upstream.tools_changed' }
  | { type: 'upstream.drift'; tool: string; pinned: string; seen: string }
  | { type: 'upstream.retry' }
  | { type: 'upstream.stop' };

/** Drift reports kept in the machine's context at most (the newest win). */
export const MAX_DRIFT_REPORTS = 100;

export const upstreamMachine = setup({
  types: {
    context: {} as UpstreamContext,
    events: {} as UpstreamEvent,
    input: {} as { name: string },
  },
  actors: {
    connect: fromPromise<void, { name: string }>(async () => {
      throw new Error('connect is provided by actors/upstream');
    }),
    refreshTools: fromPromise<void, { name: string }>(async () => {}),
    disconnect: fromPromise<void, { name: string }>(async () => {}),
  },
  actions: {
    reportUp: () => {},
    reportFault: (_, _params: { code: string }) => {},
    reportDrift: (_, _params: { tool: string }) => {},
  },
  delays: {
    backoff: ({ context }) => backoffDelay(context.attempts),
  },
  guards: {
    tooManyAttempts: ({ context }) => context.attempts + 1 >= MAX_CONNECT_ATTEMPTS,
  },
}).createMachine({
  id: 'upstream',
  context: ({ input }) => ({ name: input.name, attempts: 0, connects: 0, drift: [] }),
  initial: 'connecting',
  on: {
    'upstream.stop': '.stopping',
    'upstream.drift': {
      actions: [
        assign({
          drift: ({ context, event }) =>
            [...context.drift, { tool: event.tool, pinned: event.pinned, seen: event.seen }].slice(-MAX_DRIFT_REPORTS),
        }),
        { type: 'reportDrift', params: ({ event }) => ({ tool: event.tool }) },
      ],
    },
  },
  states: {
    connecting: {
      // upstream.closed is not handled here: connect itself fails when its connection is gone at
      // the end (actors/upstream), so a server that dies mid-connect takes the onError path.
      invoke: {
        src: 'connect',
        input: ({ context }) => ({ name: context.name }),
        onDone: {
          target: 'ready',
          actions: [assign({ attempts: 0, connects: ({ context }) => context.connects + 1 }), 'reportUp'],
        },
        onError: [
          {
            guard: 'tooManyAttempts',
            target: 'failed',
            actions: [
              assign({ attempts: ({ context }) => context.attempts + 1, lastError: ({ event }) => String((event.error as Error)?.message ?? event.error) }),
              { type: 'reportFault', params: { code: 'upstream_failed' } },
            ],
          },
          {
            target: 'backoff',
            actions: assign({
              attempts: ({ context }) => context.attempts + 1,
              lastError: ({ event }) => String((event.error as Error)?.message ?? event.error),
            }),
          },
        ],
      },
    },
    ready: {
      on: {
        'upstream.closed': { target: 'backoff', actions: assign({ attempts: 1 }) },
        'upstream.tools_changed': 'refreshing',
      },
    },
    refreshing: {
      invoke: {
        src: 'refreshTools',
        input: ({ context }) => ({ name: context.name }),
        onDone: 'ready',
        onError: 'ready',
      },
      on: { 'upstream.closed': { target: 'backoff', actions: assign({ attempts: 1 }) } },
    },
    backoff: {
      after: { backoff: 'connecting' },
      on: { 'upstream.retry': 'connecting' },
    },
    failed: {
      // Stays down until the TGA (or an operator) asks again.
      on: { 'upstream.retry': { target: 'connecting', actions: assign({ attempts: 0 }) } },
    },
    stopping: {
      invoke: {
        src: 'disconnect',
        input: ({ context }) => ({ name: context.name }),
        onDone: 'stopped',
        onError: 'stopped',
      },
    },
    stopped: { type: 'final' },
  },
});
