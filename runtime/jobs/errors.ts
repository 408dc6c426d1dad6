import { TalosError } from '../errors.ts';

/**
 * Refusals of the job scheduler. Codes (stable):
 * - `job_bad_name`: a job name is not of the required form
 * - `job_bad_interval`: an interval outside MIN_INTERVAL_MS..MAX_INTERVAL_MS
 * - `job_bad_data`: job data is not JSON, or larger than MAX_JOB_DATA_BYTES
 * - `job_unknown`: a job arrived for which no handler is registered
 * - `scheduler_stopped`: the scheduler is stopped (or not started) and refuses work
 * - `scheduler_overloaded`: too many runs pending in the in-process scheduler (MAX_PENDING_RUNS)
 */
export class JobError extends TalosError {}
