import { assign, fromPromise, setup } from 'xstate';

/**
 * The auditor: the single writer of the audit log, and the signer of its checkpoints. Pure;
 * its effects are named actors bound in actors/auditor:
 *  - signCheckpoint: signs and stores a checkpoint of the log head;
 *  - drainWriter: waits until the group-commit writer has written everything queued.
 * The appends themselves go through the writer (actors/auditor/writer.ts: bounded queue, group
 * commit), which reports to this machine only what changes its state: the first commit since
 * the last checkpoint (`auditor.committed`) and `checkpointEveryEvents` commits since it
 * (`auditor.due`) — a handful of events per second, whatever the append rate.
 *
 * A checkpoint is signed `checkpointEveryMs` after the first commit it would cover, as soon as
 * `checkpointEveryEvents` events were committed since the last one, or on `auditor.checkpoint`.
 * A failed signing is reported and retried on the next interval only (no hot retry loop).
 * `auditor.close` drains the writer, signs a final checkpoint when something is not covered,
 * and stops.
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

export interface AuditorContext {
  config: AuditorConfig;
  /** Commits exist that no signed (or signing) checkpoint covers. */
  dirty: boolean;
  closing: boolean;
  checkpoints: number;
  /** Log size of the last signed checkpoint. */
  checkpointSize: number;
  /** The last signing failed: `auditor.due` waits for the interval. */
  signFailed: boolean;
}

export type AuditorEvent =
  /** The writer committed the first batch since the last checkpoint started. */
  | { type: 'auditor.committed' }
  /** The writer committed `checkpointEveryEvents` events since the last checkpoint started. */
  | { type: 'auditor.due' }
  | { type: 'auditor.checkpoint' }
  | { type: 'auditor.close' };

const unboundSign = fromPromise<{ size: number }, void>(async () => {
  throw new Error('signCheckpoint is not bound');
});
const unboundDrain = fromPromise<void, void>(async () => {
  throw new Error('drainWriter is not bound');
});

const reportSignError = { type: 'reportError', params: ({ event }: { event: { error: unknown } }) => ({ what: 'checkpoint', error: event.error }) } as const;
/** A checkpoint was signed: counted here, reported to the binding. */
const signed = [
  { type: 'counted', params: ({ event }: { event: { output: { size: number } } }) => ({ size: event.output.size }) },
  { type: 'checkpointed', params: ({ event }: { event: { output: { size: number } } }) => ({ size: event.output.size }) },
] as const;

export const auditorMachine = setup({
  types: {
    context: {} as AuditorContext,
    events: {} as AuditorEvent,
    input: {} as { config?: Partial<AuditorConfig> },
  },
  actors: { signCheckpoint: unboundSign, drainWriter: unboundDrain },
  actions: {
    /** Effect: a checkpoint starts; the writer counts commits for the next one from zero. */
    checkpointStarted: () => {},
    /** Effect: a checkpoint of this size was signed and stored. */
    checkpointed: (_, _p: { size: number }) => {},
    counted: assign(({ context }, p: { size: number }) => ({ checkpoints: context.checkpoints + 1, checkpointSize: p.size })),
    reportError: (_, _p: { what: string; error: unknown }) => {},
  },
  delays: {
    checkpointInterval: ({ context }) => context.config.checkpointEveryMs,
  },
  guards: {
    closing: ({ context }) => context.closing,
    dirty: ({ context }) => context.dirty,
    signedOk: ({ context }) => !context.signFailed,
  },
}).createMachine({
  id: 'auditor',
  context: ({ input }) => ({
    config: { ...DEFAULT_AUDITOR_CONFIG, ...input.config },
    dirty: false,
    closing: false,
    checkpoints: 0,
    checkpointSize: 0,
    signFailed: false,
  }),
  initial: 'clean',
  on: {
    'auditor.committed': { actions: assign({ dirty: true }) },
    'auditor.close': { target: '.draining' },
  },
  states: {
    /** Every commit is covered by a checkpoint. */
    clean: {
      on: { 'auditor.committed': { target: 'dirty', actions: assign({ dirty: true }) } },
    },
    dirty: {
      after: { checkpointInterval: 'signing' },
      on: {
        'auditor.due': { guard: 'signedOk', target: 'signing' },
        'auditor.checkpoint': 'signing',
      },
    },
    signing: {
      entry: [assign({ dirty: false, signFailed: false }), 'checkpointStarted'],
      invoke: {
        src: 'signCheckpoint',
        onDone: [
          { guard: 'closing', target: 'draining', actions: signed },
          { guard: 'dirty', target: 'dirty', actions: signed },
          { target: 'clean', actions: signed },
        ],
        onError: [
          { guard: 'closing', target: 'draining', actions: [reportSignError, assign({ dirty: true, signFailed: true })] },
          // Not signed: the events still need a checkpoint.
          { target: 'dirty', actions: [reportSignError, assign({ dirty: true, signFailed: true })] },
        ],
      },
      // Closing while signing: finish the signature first.
      on: { 'auditor.close': { actions: assign({ closing: true }) } },
    },
    draining: {
      entry: assign({ closing: true }),
      invoke: {
        src: 'drainWriter',
        onDone: [{ guard: 'dirty', target: 'finalSigning' }, { target: 'closed' }],
        onError: { target: 'closed', actions: { type: 'reportError', params: ({ event }) => ({ what: 'drain', error: event.error }) } },
      },
      on: { 'auditor.close': {} },
    },
    finalSigning: {
      entry: 'checkpointStarted',
      invoke: {
        src: 'signCheckpoint',
        onDone: { target: 'closed', actions: signed },
        onError: { target: 'closed', actions: reportSignError },
      },
      on: { 'auditor.close': {} },
    },
    closed: { type: 'final' },
  },
});
