import { assign, fromPromise, setup } from 'xstate';

/**
 * The gateway's lifecycle. Pure: `startServices` (limits, audit, upstreams, then the listening
 * tunnel server) and `stopServices` are bound in actors/gateway. The per-request pipeline is
 * not a machine per request (thousands per second): it is runtime/mcp/pipeline.ts, called by
 * the serving gateway; this machine counts what it does and reports to the TGA.
 *
 *   starting --ok--> serving --gateway.stop--> draining --> stopped
 *       \--error--> failed
 */
export interface GatewayContext {
  sessions: number;
  sessionsOpened: number;
  refusedHandshakes: number;
  drift: number;
  error?: string;
}

export type GatewayEvent =
  | { type: 'gateway.session_opened' }
  | { type: 'gateway.session_closed' }
  | { type: 'gateway.handshake_refused'; code: string }
  | { type: 'gateway.drift'; upstream: string; tool: string }
  | { type: 'gateway.stop' };

export const gatewayMachine = setup({
  types: {
    context: {} as GatewayContext,
    events: {} as GatewayEvent,
  },
  actors: {
    startServices: fromPromise<void>(async () => {
      throw new Error('startServices is provided by actors/gateway');
    }),
    stopServices: fromPromise<void>(async () => {}),
  },
  actions: {
    reportUp: () => {},
    reportFault: (_, _params: { code: string }) => {},
    reportDrift: (_, _params: { upstream: string; tool: string }) => {},
  },
}).createMachine({
  id: 'gateway',
  context: { sessions: 0, sessionsOpened: 0, refusedHandshakes: 0, drift: 0 },
  initial: 'starting',
  states: {
    starting: {
      invoke: {
        src: 'startServices',
        onDone: { target: 'serving', actions: 'reportUp' },
        onError: {
          target: 'failed',
          actions: [
            assign({ error: ({ event }) => String((event.error as Error)?.message ?? event.error) }),
            { type: 'reportFault', params: { code: 'gateway_start_failed' } },
          ],
        },
      },
      on: { 'gateway.drift': { actions: [assign({ drift: ({ context }) => context.drift + 1 }), { type: 'reportDrift', params: ({ event }) => ({ upstream: event.upstream, tool: event.tool }) }] } },
    },
    serving: {
      on: {
        'gateway.session_opened': { actions: assign({ sessions: ({ context }) => context.sessions + 1, sessionsOpened: ({ context }) => context.sessionsOpened + 1 }) },
        'gateway.session_closed': { actions: assign({ sessions: ({ context }) => Math.max(0, context.sessions - 1) }) },
        'gateway.handshake_refused': { actions: assign({ refusedHandshakes: ({ context }) => context.refusedHandshakes + 1 }) },
        'gateway.drift': {
          actions: [
            assign({ drift: ({ context }) => context.drift + 1 }),
            { type: 'reportDrift', params: ({ event }) => ({ upstream: event.upstream, tool: event.tool }) },
          ],
        },
        'gateway.stop': 'draining',
      },
    },
    draining: {
      invoke: { src: 'stopServices', onDone: 'stopped', onError: 'stopped' },
    },
    failed: {
      on: { 'gateway.stop': 'draining' },
    },
    stopped: { type: 'final' },
  },
});
