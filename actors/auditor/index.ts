import { createActor, fromPromise, type Actor, type ActorOptions, type AnyActorLogic, type InspectionEvent } from 'xstate';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { AuditError } from '../../runtime/audit/errors.ts';
import type { AuditLog } from '../../runtime/audit/log.ts';
import type { LogKey, SignedCheckpoint } from '../../runtime/audit/checkpoint.ts';
import { leafBytes, type AuditEvent } from '../../runtime/audit/event.ts';
import { auditorMachine, DEFAULT_AUDITOR_CONFIG, type AuditorConfig } from '../../machines/auditor.machine.ts';
import { GroupCommitWriter, type Appended } from './writer.ts';

export type { Appended } from './writer.ts';

/**
 * The auditor actor: binds machines/auditor.machine.ts (lifecycle, checkpoints) and the
 * group-commit writer (appends) to an AuditLog and the log key (checkpoint signing, Ed25519
 * through the CryptoProvider).
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
  /**
   * Computes a batch's leaf hashes elsewhere (the gateway's worker pool, for batches too large
   * to hash inline); undefined, or a promise of undefined, leaves the hashing to the store.
   */
  hashLeaves?: (leaves: Uint8Array[]) => Promise<Uint8Array[] | undefined> | undefined;
  /** XState clock (SimulatedClock in simulations). */
  clock?: ActorOptions<AnyActorLogic>['clock'];
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
  const config = { ...DEFAULT_AUDITOR_CONFIG, ...options.config };
  let latest: SignedCheckpoint | null = null;
  // What the machine has been told since the current checkpoint started (edge-triggered).
  let sinceCheckpoint = 0;
  let toldCommitted = false;
  let toldDue = false;
  const store = options.log.store;
  const commit = (leaves: Uint8Array[]) => {
    const hashing = options.hashLeaves?.(leaves);
    return hashing ? hashing.then((hashes) => store.append(leaves, hashes)) : store.append(leaves);
  };
  const writer = new GroupCommitWriter(commit, config, (count) => {
    sinceCheckpoint += count;
    if (!toldCommitted) {
      toldCommitted = true;
      actor.send({ type: 'auditor.committed' });
    }
    if (!toldDue && sinceCheckpoint >= config.checkpointEveryEvents) {
      toldDue = true;
      actor.send({ type: 'auditor.due' });
    }
  });
  const machine = auditorMachine.provide({
    actors: {
      signCheckpoint: fromPromise<{ size: number }, void>(async () => {
        const cp = await options.log.checkpoint(options.crypto, options.key);
        latest = cp;
        options.onCheckpoint?.(cp);
        return { size: cp.size };
      }),
      drainWriter: fromPromise<void, void>(() => writer.close()),
    },
    actions: {
      checkpointStarted: () => {
        sinceCheckpoint = 0;
        toldCommitted = false;
        toldDue = false;
      },
      reportError: (_, { what, error }) => options.onError?.(what, error),
    },
  });
  const actor = createActor(machine, {
    input: { config },
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
      return writer.append(leaf);
    },
    checkpointNow: () => actor.send({ type: 'auditor.checkpoint' }),
    latestCheckpoint: () => latest,
    async close() {
      if (actor.getSnapshot().status === 'active') actor.send({ type: 'auditor.close' });
      await done;
    },
  };
}
