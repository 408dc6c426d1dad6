import { Worker } from 'node:worker_threads';
import { describeError, TalosError } from '../runtime/errors.ts';
import type { RunVariant, SweepPlan, SweepTask, SweptRun } from './runner.ts';

/**
 * A sweep spread over worker threads. Every run is independent and a function of its seed, and
 * fake timers are installed over the globals of the thread running it (one run at a time per
 * thread), so runs on different threads cannot see each other. Each thread asks for its next
 * task when it finishes one (a slow seed never leaves the other threads idle); the plan puts
 * the results back in sequential order.
 *
 * Refusals of a sweep. Codes (stable):
 * - `sim_sweep_bad_options`: jobs is not a positive integer, or observe with jobs > 1
 * - `sim_run_threw`: a run threw instead of returning its result (names the scenario and seed)
 * - `sim_worker_crashed`: a worker thread died (names the run it had last been given)
 */
export class SweepError extends TalosError {}

/** The worker entry: plain JS that gives the thread a TypeScript loader first (workers/typescript-loader.mjs). */
const WORKER_FILE = new URL('./sweep-worker.mjs', import.meta.url);

/** What the sweep worker sends back for one task. */
export type SweepWorkerReply = { run: SweptRun } | { threw: string };

/** Data the worker starts with: the options every run of the sweep shares (plain data only). */
export interface SweepWorkerData {
  options: RunVariant;
}

export function runThrew(task: SweepTask, err: unknown): SweepError {
  return new SweepError('sim_run_threw', `the run of ${task.scenario} seed ${task.seed} threw ${describeError(err)}`, { cause: err });
}

/**
 * Runs every task of `plan` on `threads` worker threads. Resolves when all are reported;
 * rejects at the first run that throws or thread that dies. The threads are terminated
 * either way, so nothing keeps the process alive.
 */
export async function runOnThreads(plan: SweepPlan, options: SweepWorkerData['options'], threads: number): Promise<void> {
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let idle = 0;
      // Once the sweep has failed, replies already queued from other threads are ignored:
      // nothing more is reported (onRun) or handed out after sweep() has rejected.
      let failed = false;
      const fail = (err: unknown) => {
        failed = true;
        reject(err);
      };
      for (let i = 0; i < threads; i++) {
        // No execArgv: a test runner's loaders and instrumentation would cost each thread seconds; the
        // worker registers its own TypeScript loader.
        const worker = new Worker(WORKER_FILE, { workerData: { options } satisfies SweepWorkerData, execArgv: [] });
        workers.push(worker);
        // The task given last: a thread that dies when idle most likely died of it (async work left over).
        let task: SweepTask | undefined;
        let running = false;
        const feed = () => {
          const next = plan.next();
          running = next !== undefined;
          if (next) {
            task = next;
            worker.postMessage({ scenario: next.scenario, seed: next.seed });
          } else if (++idle === threads) {
            resolve();
          }
        };
        // After the promise has settled (a failure, or our own terminate) these change nothing.
        const crashed = (why: string) => {
          const run = task ? ` ${running ? 'while running' : 'after running'} ${task.scenario} seed ${task.seed}` : '';
          fail(new SweepError('sim_worker_crashed', `a sweep worker thread ${why}${run}`));
        };
        worker.on('message', (reply: SweepWorkerReply) => {
          if (failed) return;
          if ('threw' in reply) return fail(runThrew(task!, reply.threw));
          try {
            plan.add(task!, reply.run);
          } catch (err) {
            return fail(err); // the onRun callback threw
          }
          feed();
        });
        worker.on('error', (err) => crashed(`died (${describeError(err)})`));
        worker.on('messageerror', (err) => crashed(`sent a message that could not be read (${describeError(err)})`));
        worker.on('exit', (code) => crashed(`exited with code ${code}`));
        feed();
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}
