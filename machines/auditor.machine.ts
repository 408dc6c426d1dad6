import { assign, fromPromise, setup } from 'xstate';

/**
 * The auditor: the single writer of the audit log. Pure; its effects are named actors bound in
 * actors/auditor:
 *  - commitBatch: appends a batch of leaves durably (group commit: everything queued while the
 *    previous batch was being written goes in the next transaction, up to maxBatch);
 *  - signCheckpoint: signs and stores a checkpoint of the log head.
 * Requests are identified by ids; the binding holds the callers' promises and the machine
 * tells it, through the acknowledge / refuse / fail actions, how each one ends. The queue is
 * bounded: a full queue refuses with 'audit_backpressure' (never a silent drop).
 * A checkpoint is signed every `checkpointEveryMs` when something was appended since the last
 * one, and as soon as `checkpointEveryEvents` events were committed since the last one.
 * `auditor.close` drains the queue, signs a final checkpoint when needed, and stops.
 */
export interface AuditorConfig {
  /** Leaves per store transaction at most. */
  maxBatch: number;
  /** Requests waiting (not counting the batch being written) at most. */
  maxQueue: number;
  checkpointEveryMs: number;
  checkpointEveryEvents: number;
}

export const DEFAULT_AUDITOR_CONFIG: AuditorConfig = {
  maxBatch: 2048,
  maxQueue: 65_536,
  checkpointEveryMs: 1000,
  checkpointEveryEvents: 100_000,
};

export interface QueuedLeaf {
  id: number;
  leaf: Uint8Array;
}

export interface CommitResult {
  first: number;
  size: number;
  leafHashes: Uint8Array[];
}

export interface AuditorContext {
  config: AuditorConfig;
  queue: QueuedLeaf[];
  inFlight: QueuedLeaf[];
  /** Events committed since the last checkpoint was started. */
  sinceCheckpoint: number;
  closing: boolean;
  drained: boolean;
  committed: number;
  checkpoints: number;
  /** A signing failed: retry on the next interval only (no hot retry loop). */
  signFailed: boolean;
}

export type AuditorEvent =
  /** One or more requests (the binding sends whatever arrived in one tick as one event). */
  | { type: 'auditor.append'; items: QueuedLeaf[] }
  | { type: 'auditor.checkpoint' }
  | { type: 'auditor.close' };

export type RefusalCode = 'audit_backpressure' | 'audit_closed';

const unboundCommit = fromPromise<CommitResult, { leaves: Uint8Array[] }>(async () => {
  throw new Error('commitBatch is not bound');
});
const unboundSign = fromPromise<{ size: number }, void>(async () => {
  throw new Error('signCheckpoint is not bound');
});

export const auditorMachine = setup({
  types: {
    context: {} as AuditorContext,
    events: {} as AuditorEvent,
    input: {} as { config?: Partial<AuditorConfig> },
  },
  actors: { commitBatch: unboundCommit, signCheckpoint: unboundSign },
  actions: {
    /** Effect: resolve these requests (index = result.first + position). */
    acknowledge: (_, _p: { ids: number[]; result: CommitResult }) => {},
    /** Effect: reject these requests without queueing them (called with [] when all fit). */
    refuse: (_, _p: { ids: number[]; code: RefusalCode }) => {},
    /** Effect: reject the requests of a batch whose commit failed (nothing of it was written). */
    fail: (_, _p: { ids: number[]; error: unknown }) => {},
    /** Effect: report a signed checkpoint, or a signing failure. */
    checkpointed: (_, _p: { size: number }) => {},
    reportError: (_, _p: { what: string; error: unknown }) => {},
  },
  delays: {
    checkpointInterval: ({ context }) => context.config.checkpointEveryMs,
  },
  guards: {
    closing: ({ context }) => context.closing,
    hasQueued: ({ context }) => context.queue.length > 0,
    drainedNow: ({ context }) => context.closing && context.queue.length === 0,
    dirty: ({ context }) => context.sinceCheckpoint > 0,
    due: ({ context }) => !context.signFailed && context.sinceCheckpoint >= context.config.checkpointEveryEvents,
    drainedDirty: ({ context }) => !context.signFailed && context.drained && context.sinceCheckpoint > 0,
    drainedClean: ({ context }) => context.drained && (context.sinceCheckpoint === 0 || context.signFailed),
    drainedNowOrAlready: ({ context }) => context.drained,
  },
}).createMachine({
  id: 'auditor',
  context: ({ input }) => ({
    config: { ...DEFAULT_AUDITOR_CONFIG, ...input.config },
    queue: [],
    inFlight: [],
    sinceCheckpoint: 0,
    closing: false,
    drained: false,
    committed: 0,
    checkpoints: 0,
    signFailed: false,
  }),
  initial: 'running',
  states: {
    running: {
      type: 'parallel',
      on: {
        'auditor.append': [
          {
            guard: 'closing',
            actions: { type: 'refuse', params: ({ event }) => ({ ids: event.items.map((q) => q.id), code: 'audit_closed' as const }) },
          },
          {
            // Requests beyond the queue's room are refused, in order: the first ones fit.
            actions: [
              {
                type: 'refuse',
                params: ({ context, event }) => ({
                  ids: event.items.slice(Math.max(0, context.config.maxQueue - context.queue.length)).map((q) => q.id),
                  code: 'audit_backpressure' as const,
                }),
              },
              assign({
                // Appended in place: copying the queue on every request would make a burst
                // O(n^2). The array is owned by this machine's context and never shared.
                queue: ({ context, event }) => {
                  const room = Math.max(0, context.config.maxQueue - context.queue.length);
                  for (const q of event.items.slice(0, room)) context.queue.push(q);
                  return context.queue;
                },
              }),
            ],
          },
        ],
        'auditor.close': { actions: assign({ closing: true }) },
      },
      states: {
        writer: {
          initial: 'idle',
          states: {
            idle: {
              always: [
                { guard: 'hasQueued', target: 'writing' },
                { guard: 'drainedNow', target: 'drained' },
              ],
            },
            writing: {
              entry: assign(({ context }) => ({
                inFlight: context.queue.slice(0, context.config.maxBatch),
                queue: context.queue.slice(context.config.maxBatch),
              })),
              invoke: {
                src: 'commitBatch',
                input: ({ context }) => ({ leaves: context.inFlight.map((q) => q.leaf) }),
                onDone: {
                  target: 'idle',
                  actions: [
                    { type: 'acknowledge', params: ({ context, event }) => ({ ids: context.inFlight.map((q) => q.id), result: event.output }) },
                    assign(({ context }) => ({
                      sinceCheckpoint: context.sinceCheckpoint + context.inFlight.length,
                      committed: context.committed + context.inFlight.length,
                      inFlight: [],
                    })),
                  ],
                },
                onError: {
                  target: 'idle',
                  actions: [
                    { type: 'fail', params: ({ context, event }) => ({ ids: context.inFlight.map((q) => q.id), error: event.error }) },
                    assign({ inFlight: [] }),
                  ],
                },
              },
            },
            drained: {
              type: 'final',
              entry: assign({ drained: true }),
            },
          },
        },
        checkpointer: {
          initial: 'waiting',
          states: {
            waiting: {
              always: [
                { guard: 'due', target: 'signing' },
                { guard: 'drainedDirty', target: 'signing' },
                { guard: 'drainedClean', target: 'done' },
              ],
              after: {
                checkpointInterval: [
                  { guard: 'dirty', target: 'signing' },
                  { target: 'waiting', reenter: true },
                ],
              },
              on: { 'auditor.checkpoint': { guard: 'dirty', target: 'signing' } },
            },
            signing: {
              entry: assign({ sinceCheckpoint: 0, signFailed: false }),
              invoke: {
                src: 'signCheckpoint',
                onDone: {
                  target: 'waiting',
                  actions: [
                    { type: 'checkpointed', params: ({ event }) => ({ size: event.output.size }) },
                    assign({ checkpoints: ({ context }) => context.checkpoints + 1 }),
                  ],
                },
                onError: [
                  {
                    // Closing: report and stop rather than retry forever.
                    guard: 'drainedNowOrAlready',
                    target: 'done',
                    actions: { type: 'reportError', params: ({ event }) => ({ what: 'checkpoint', error: event.error }) },
                  },
                  {
                    target: 'waiting',
                    actions: [
                      { type: 'reportError', params: ({ event }) => ({ what: 'checkpoint', error: event.error }) },
                      // Not signed: the events still need a checkpoint; keep them counted.
                      assign({ sinceCheckpoint: ({ context }) => Math.max(1, context.sinceCheckpoint), signFailed: true }),
                    ],
                  },
                ],
              },
            },
            done: { type: 'final' },
          },
        },
      },
      onDone: 'closed',
    },
    closed: { type: 'final' },
  },
});
