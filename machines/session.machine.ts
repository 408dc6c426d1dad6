import { assign, cancel, fromPromise, raise, setup } from 'xstate';
import type { Session } from '../runtime/session/session.ts';

/**
 * One end-to-end session as an actor. Pure: the crypto and the store are the named actors
 * `start`, `process` and `shutdown`, bound in actors/session (main-thread provider today; a
 * worker pool later, without touching this file).
 *
 *   handshaking --start ok--> established --CLOSE / idle / peer close--> closing --> closed
 *        \--start error--> failed          \--store or internal error--> failed
 *
 * A CLOSE during handshaking waits for `start` (which may already have committed the session):
 * the session then closes as an established one does; a start that fails ends it closed.
 * A start whose frame is the peer's close of a stored session ends closed, by the peer.
 *
 * Owner -> session: SEND {plaintext}, DELIVER {frame}, CLOSE {reason?}.
 * Session -> owner (action `toOwner`): OUTBOUND {frame}, RECEIVED {plaintext}, REFUSED {code}
 * (a frame or send refused; the session goes on unchanged), CLOSED {reason, by}, FAILED {code}.
 * Operations run one at a time in arrival order; each commits to the store before its output.
 */

/** Operations waiting while one runs; more are refused with `queue_full`. */
export const MAX_PENDING_OPS = 1024;
/** Default idle timeout: a session with no traffic for this long closes itself. */
export const DEFAULT_IDLE_TIMEOUT_MS = 10 * 60 * 1000;
/** The delayed idle event's explicit id (cancel/re-arm by id; PITFALLS: no random ids). */
export const IDLE_TIMER_ID = 'session.idle';

export type SessionOp = { type: 'send'; plaintext: Uint8Array } | { type: 'deliver'; frame: string };

/** How the session starts: as initiator (from an offer), as responder (from a first frame), or from the store. */
export type SessionStart =
  | { kind: 'initiate'; offer: unknown }
  | { kind: 'accept'; frame: string }
  | { kind: 'resume'; sid: Uint8Array };

export type SessionInbound =
  | { type: 'SEND'; plaintext: Uint8Array }
  | { type: 'DELIVER'; frame: string }
  | { type: 'CLOSE'; reason?: string }
  | { type: 'IDLE_TIMEOUT' };

export type SessionOutbound =
  | { type: 'OUTBOUND'; frame: string }
  | { type: 'RECEIVED'; plaintext: Uint8Array }
  | { type: 'REFUSED'; code: string }
  /** `frame`: the close frame to deliver to the peer (self-initiated closes of an established session). */
  | { type: 'CLOSED'; reason: string; by: 'self' | 'peer'; frame?: string | null }
  | { type: 'FAILED'; code: string };

/** What the `start` actor returns. */
export interface StartOutput {
  session: Session;
  /** The responder's first plaintext. */
  plaintext?: Uint8Array;
  /** Set when the frame was the peer's close of a stored session (already deleted): its reason. */
  closeReason?: string;
}

/** What the `process` actor returns for one operation (refusals are results, not errors). */
export type ProcessOutput =
  | { kind: 'sent'; session: Session; frame: string }
  | { kind: 'received'; session: Session; plaintext: Uint8Array }
  | { kind: 'peer_closed'; session: Session; reason: string }
  | { kind: 'refused'; code: string };

export interface SessionContext {
  start: SessionStart;
  idleTimeoutMs: number;
  session: Session | null;
  queue: SessionOp[];
  closeReason: string;
  /** Set by CLOSE or the idle timer; acted on once no operation is in flight. */
  closeRequested: string | null;
  failure: string | null;
}

export interface SessionInput {
  start: SessionStart;
  idleTimeoutMs?: number;
}

const errorCode = (error: unknown): string =>
  typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string'
    ? (error as { code: string }).code
    : 'internal_error';

export const sessionMachine = setup({
  types: {
    context: {} as SessionContext,
    events: {} as SessionInbound,
    input: {} as SessionInput,
  },
  actors: {
    start: fromPromise<StartOutput, SessionStart>(async () => {
      throw new Error('start is provided by actors/session');
    }),
    process: fromPromise<ProcessOutput, { session: Session; op: SessionOp }>(async () => {
      throw new Error('process is provided by actors/session');
    }),
    shutdown: fromPromise<{ frame: string | null }, { session: Session | null; reason: string; notifyPeer: boolean }>(async () => ({
      frame: null,
    })),
  },
  actions: {
    toOwner: (_, _message: SessionOutbound) => {},
    armIdle: raise({ type: 'IDLE_TIMEOUT' }, { id: IDLE_TIMER_ID, delay: 'idleTimeout' }),
    disarmIdle: cancel(IDLE_TIMER_ID),
    enqueue: assign({
      queue: ({ context, event }) => {
        if (event.type === 'SEND') return [...context.queue, { type: 'send' as const, plaintext: event.plaintext }];
        if (event.type === 'DELIVER') return [...context.queue, { type: 'deliver' as const, frame: event.frame }];
        return context.queue;
      },
    }),
  },
  delays: {
    idleTimeout: ({ context }) => context.idleTimeoutMs,
  },
  guards: {
    hasWork: ({ context }) => context.queue.length > 0,
    queueFull: ({ context }) => context.queue.length >= MAX_PENDING_OPS,
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => ({
    start: input.start,
    idleTimeoutMs: input.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS,
    session: null,
    queue: [],
    closeReason: 'closed',
    closeRequested: null,
    failure: null,
  }),
  initial: 'handshaking',
  on: {
    SEND: [
      { guard: 'queueFull', actions: { type: 'toOwner', params: { type: 'REFUSED', code: 'queue_full' } } },
      { actions: 'enqueue' },
    ],
    DELIVER: [
      { guard: 'queueFull', actions: { type: 'toOwner', params: { type: 'REFUSED', code: 'queue_full' } } },
      { actions: 'enqueue' },
    ],
  },
  states: {
    handshaking: {
      invoke: {
        src: 'start',
        input: ({ context }) => context.start,
        onDone: [
          {
            guard: ({ event }) => event.output.closeReason !== undefined,
            target: 'closed',
            actions: [
              assign({ closeReason: ({ event }) => event.output.closeReason! }),
              { type: 'toOwner', params: ({ context }) => ({ type: 'CLOSED' as const, reason: context.closeReason, by: 'peer' as const }) },
            ],
          },
          {
            // A CLOSE that came meanwhile is acted on by established.ready, before any queued op.
            guard: ({ event }) => event.output.plaintext !== undefined,
            target: 'established',
            actions: [
              assign({ session: ({ event }) => event.output.session }),
              { type: 'toOwner', params: ({ event }) => ({ type: 'RECEIVED' as const, plaintext: event.output.plaintext! }) },
            ],
          },
          { target: 'established', actions: assign({ session: ({ event }) => event.output.session }) },
        ],
        onError: [
          {
            // Closed before it started: nothing was committed, so nothing to delete.
            guard: ({ context }) => context.closeRequested !== null,
            target: 'closed',
            actions: [
              assign({ closeReason: ({ context }) => context.closeRequested! }),
              { type: 'toOwner', params: ({ context }) => ({ type: 'CLOSED' as const, reason: context.closeReason, by: 'self' as const }) },
            ],
          },
          {
            target: 'failed',
            actions: assign({ failure: ({ event }) => errorCode(event.error) }),
          },
        ],
      },
      on: {
        // `start` may already have stored the session (initiate saves it, accept commits it with
        // the one-time prekey): closing now would leave its keys in the store. Wait for it.
        CLOSE: { actions: assign({ closeRequested: ({ event }) => event.reason ?? 'closed' }) },
      },
    },
    established: {
      entry: 'armIdle',
      exit: 'disarmIdle',
      initial: 'ready',
      // A close waits for the operation in flight to commit (never interrupts it), then closes.
      on: {
        CLOSE: { actions: assign({ closeRequested: ({ event }) => event.reason ?? 'closed' }) },
        IDLE_TIMEOUT: { actions: assign({ closeRequested: 'idle' }) },
      },
      states: {
        ready: {
          always: [
            {
              guard: ({ context }) => context.closeRequested !== null,
              target: '#session.closing',
              actions: assign({ closeReason: ({ context }) => context.closeRequested! }),
            },
            { guard: 'hasWork', target: 'working' },
          ],
        },
        working: {
          invoke: {
            src: 'process',
            input: ({ context }) => ({ session: context.session!, op: context.queue[0]! }),
            onDone: [
              {
                guard: ({ event }) => event.output.kind === 'peer_closed',
                target: '#session.closed',
                actions: [
                  assign({
                    session: ({ event }) => (event.output.kind === 'peer_closed' ? event.output.session : null),
                    closeReason: ({ event }) => (event.output.kind === 'peer_closed' ? event.output.reason : 'closed'),
                    queue: [],
                  }),
                  { type: 'toOwner', params: ({ context }) => ({ type: 'CLOSED' as const, reason: context.closeReason, by: 'peer' as const }) },
                ],
              },
              {
                // Refused: the session is unchanged and the idle timer keeps running.
                guard: ({ event }) => event.output.kind === 'refused',
                target: 'ready',
                actions: [
                  assign({ queue: ({ context }) => context.queue.slice(1) }),
                  { type: 'toOwner', params: ({ event }) => ({ type: 'REFUSED' as const, code: event.output.kind === 'refused' ? event.output.code : 'internal_error' }) },
                ],
              },
              {
                // Accepted traffic re-arms the idle timer.
                target: 'ready',
                actions: [
                  'disarmIdle',
                  'armIdle',
                  assign({
                    session: ({ context, event }) => ('session' in event.output ? event.output.session : context.session),
                    queue: ({ context }) => context.queue.slice(1),
                  }),
                  {
                    type: 'toOwner',
                    params: ({ event }): SessionOutbound => {
                      const o = event.output;
                      if (o.kind === 'sent') return { type: 'OUTBOUND', frame: o.frame };
                      if (o.kind === 'received') return { type: 'RECEIVED', plaintext: o.plaintext };
                      return { type: 'REFUSED', code: o.kind === 'refused' ? o.code : 'internal_error' };
                    },
                  },
                ],
              },
            ],
            onError: {
              target: '#session.failed',
              actions: assign({ failure: ({ event }) => errorCode(event.error) }),
            },
          },
        },
      },
    },
    closing: {
      invoke: {
        src: 'shutdown',
        input: ({ context }) => ({ session: context.session, reason: context.closeReason, notifyPeer: true }),
        onDone: {
          target: 'closed',
          actions: [
            {
              type: 'toOwner',
              params: ({ context, event }) => ({ type: 'CLOSED' as const, reason: context.closeReason, by: 'self' as const, frame: event.output.frame }),
            },
          ],
        },
        onError: {
          target: 'failed',
          actions: assign({ failure: ({ event }) => errorCode(event.error) }),
        },
      },
    },
    closed: {
      type: 'final',
      entry: assign({ session: null, queue: [] }),
    },
    failed: {
      type: 'final',
      entry: [
        { type: 'toOwner', params: ({ context }) => ({ type: 'FAILED' as const, code: context.failure ?? 'internal_error' }) },
        assign({ session: null, queue: [] }),
      ],
    },
  },
});
