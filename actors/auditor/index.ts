import { createActor, fromPromise, type Actor, type ActorOptions, type AnyActorLogic, type InspectionEvent } from 'xstate';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { AuditError } from '../../runtime/audit/errors.ts';
import type { AuditLog } from '../../runtime/audit/log.ts';
import type { LogKey, SignedCheckpoint } from '../../runtime/audit/checkpoint.ts';
import { leafBytes, type AuditEvent } from '../../runtime/audit/event.ts';
import { auditorMachine, type AuditorConfig, type CommitResult } from '../../machines/auditor.machine.ts';

/**
 * The auditor actor: binds machines/auditor.machine.ts to an AuditLog (store appends) and the
 * log key (checkpoint signing, Ed25519 through the CryptoProvider).
 *
 *   const auditor = startAuditor({ log, crypto, key });
 *   const { index, leafHash } = await auditor.append(event); // resolves once durable
 *
 * append() rejects with AuditError('bad_event') for an event the schema refuses (nothing is
 * queued), 'audit_backpressure' when the bounded queue is full, 'audit_closed' after close(),
 * and with the store's error when the batch holding it failed to commit (nothing of that batch
 * was written). It never drops an event silently.
 */
export interface AuditorOptions {
  log: AuditLog;
  crypto: CryptoProvider;
  key: LogKey;
  config?: Partial<AuditorConfig>;
  onCheckpoint?: (cp: SignedCheckpoint) => void;
  onError?: (what: string, error: unknown) => void;
  /** XState inspection hook (the live inspector's recorder). */
  inspect?: (event: InspectionEvent) => void;
  /** XState clock (SimulatedClock in simulations). */
  clock?: ActorOptions<AnyActorLogic>['clock'];
}

export interface Appended {
  index: number;
  leafHash: Uint8Array;
}

export interface Auditor {
  append(event: AuditEvent): Promise<Appended>;
  /** Signs a checkpoint now if anything was appended since the last one. */
  checkpointNow(): void;
  latestCheckpoint(): SignedCheckpoint | null;
  /** Drains the queue, signs a final checkpoint if needed, and stops. */
  close(): Promise<void>;
  readonly actor: Actor<typeof auditorMachine>;
}

export function startAuditor(options: AuditorOptions): Auditor {
  const pending = new Map<number, { resolve: (a: Appended) => void; reject: (e: unknown) => void }>();
  let nextId = 0;
  let latest: SignedCheckpoint | null = null;
  let staged: { id: number; leaf: Uint8Array }[] = [];
  const sendStaged = () => {
    const items = staged;
    staged = [];
    if (items.length > 0) actor.send({ type: 'auditor.append', items });
  };
  const settle = (id: number) => {
    const p = pending.get(id);
    pending.delete(id);
    return p;
  };
  const machine = auditorMachine.provide({
    actors: {
      commitBatch: fromPromise<CommitResult, { leaves: Uint8Array[] }>(async ({ input }) => {
        // Yield to the event loop first: a synchronous store (SQLite) fed by callers that only
        // await would otherwise run on microtasks alone and starve timers (the checkpoint
        // interval) and I/O; it also lets more requests join the next batch.
        await new Promise<void>((resolve) => setImmediate(resolve));
        return options.log.store.append(input.leaves);
      }),
      signCheckpoint: fromPromise<{ size: number }, void>(async () => {
        const cp = await options.log.checkpoint(options.crypto, options.key);
        latest = cp;
        options.onCheckpoint?.(cp);
        return { size: cp.size };
      }),
    },
    actions: {
      acknowledge: (_, { ids, result }) => ids.forEach((id, i) => settle(id)?.resolve({ index: result.first + i, leafHash: result.leafHashes[i]! })),
      refuse: (_, { ids, code }) =>
        ids.forEach((id) => settle(id)?.reject(new AuditError(code, code === 'audit_backpressure' ? 'the audit queue is full: retry later' : 'the auditor is closed'))),
      fail: (_, { ids, error }) => ids.forEach((id) => settle(id)?.reject(error)),
      checkpointed: () => {},
      reportError: (_, { what, error }) => options.onError?.(what, error),
    },
  });
  const actor = createActor(machine, {
    input: { config: options.config ?? {} },
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  actor.start();
  const done = new Promise<void>((resolve) => {
    const sub = actor.subscribe({
      next: (s) => {
        if (s.status === 'done') {
          sub.unsubscribe();
          resolve();
        }
      },
      complete: () => resolve(),
    });
  });

  return {
    actor,
    append(event) {
      let leaf: Uint8Array;
      try {
        leaf = leafBytes(event); // validated alone: a bad event never fails the batch it would join
      } catch (e) {
        return Promise.reject(e);
      }
      if (actor.getSnapshot().status !== 'active') return Promise.reject(new AuditError('audit_closed', 'the auditor is closed'));
      const id = nextId++;
      const p = new Promise<Appended>((resolve, reject) => pending.set(id, { resolve, reject }));
      // Requests of one tick reach the machine as one event (one macrostep, not one each).
      staged.push({ id, leaf });
      if (staged.length === 1) queueMicrotask(sendStaged);
      return p;
    },
    checkpointNow: () => actor.send({ type: 'auditor.checkpoint' }),
    latestCheckpoint: () => latest,
    async close() {
      sendStaged();
      if (actor.getSnapshot().status === 'active') actor.send({ type: 'auditor.close' });
      await done;
    },
  };
}
