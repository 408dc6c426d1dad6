import type { SecretVault } from '../secrets/vault.ts';
import type { JobHandler, Scheduler } from './scheduler.ts';

/**
 * The recurring jobs the TGA schedules (contracts/SPEC.md section 10). Names are stable: they are
 * the BullMQ job scheduler ids, so a restarted runtime upserts the same schedules.
 */
export const TGA_JOBS = {
  /** Re-wrap records still under an old KEK and retire KEKs no record needs. */
  kekRotation: { name: 'kek-rotation', everyMs: 60 * 60 * 1000 },
  /** Replace the signed prekey (X3DH SPK) when it is older than its lifetime. */
  signedPrekeyRotation: { name: 'signed-prekey-rotation', everyMs: 24 * 60 * 60 * 1000 },
  /** Top the one-time prekey pool back up to its target size. */
  oneTimePrekeyReplenish: { name: 'one-time-prekey-replenish', everyMs: 10 * 60 * 1000 },
  /** Start a new budget window for every agent whose window ended. */
  budgetWindowReset: { name: 'budget-window-reset', everyMs: 60 * 1000 },
  /** Sign and publish the audit log's checkpoint. */
  checkpointPublish: { name: 'checkpoint-publish', everyMs: 60 * 1000 },
} as const;

export type TgaJobId = keyof typeof TGA_JOBS;

/**
 * Registers the handlers given and schedules their jobs (upsert: safe on every start).
 * A job without a handler is not scheduled. `everyMs` overrides the default intervals.
 */
export async function scheduleTgaJobs(
  scheduler: Scheduler,
  handlers: Partial<Record<TgaJobId, JobHandler>>,
  everyMs: Partial<Record<TgaJobId, number>> = {},
): Promise<string[]> {
  const scheduled: string[] = [];
  for (const [id, handler] of Object.entries(handlers) as [TgaJobId, JobHandler | undefined][]) {
    if (!handler) continue;
    const job = TGA_JOBS[id];
    scheduler.onJob(job.name, handler);
    await scheduler.schedule(job.name, everyMs[id] ?? job.everyMs);
    scheduled.push(job.name);
  }
  return scheduled;
}

/**
 * The KEK rotation job: finishes whatever rotation is under way (the operator makes a new KEK
 * primary through TALOS_KEK or the key-ring file, on every process), then retires old KEKs.
 * Idempotent: with nothing left to re-wrap it does nothing.
 */
export function kekRotationJob(vault: SecretVault): JobHandler {
  return async () => {
    const stats = await vault.rewrapAll();
    if (stats.failed.length === 0) await vault.retireUnused();
  };
}
