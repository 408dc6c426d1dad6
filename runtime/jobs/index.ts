export { JobError } from './errors.ts';
export { ManualClock, systemClock, type Clock } from './clock.ts';
export * from './scheduler.ts';
export { InProcessScheduler, MAX_PENDING_RUNS, type InProcessOptions } from './in-process.ts';
export { BullmqScheduler, type BullmqSchedulerOptions } from './bullmq.ts';
export { TGA_JOBS, kekRotationJob, scheduleTgaJobs, type TgaJobId } from './tga-jobs.ts';

import { BullmqScheduler, type BullmqSchedulerOptions } from './bullmq.ts';
import { InProcessScheduler, type InProcessOptions } from './in-process.ts';
import type { Scheduler } from './scheduler.ts';

/** BullMQ when a Redis URL is configured, else the in-process scheduler (same contract). */
export function createScheduler(
  options: (Partial<BullmqSchedulerOptions> & InProcessOptions) & { redisUrl?: string } = {},
): Scheduler {
  const { redisUrl, clock, ...rest } = options;
  if (redisUrl) return new BullmqScheduler({ ...rest, url: redisUrl });
  return new InProcessScheduler({ ...rest, ...(clock ? { clock } : {}) });
}
