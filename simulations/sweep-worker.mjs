// Worker entry of a threaded sweep (sweep-threads.ts); plain JS: it gets a TypeScript loader first.
import { parentPort, workerData } from 'node:worker_threads';
import '../workers/typescript-loader.mjs';

const { runScenario, sweptRun } = await import('./runner.ts');
const { describeError } = await import('../runtime/errors.ts');

// One task at a time: the next one is posted only after this reply (fake timers are per thread).
parentPort.on('message', async ({ scenario, seed }) => {
  let reply;
  try {
    reply = { run: sweptRun(await runScenario(scenario, seed, workerData.options)) };
  } catch (err) {
    reply = { threw: describeError(err) };
  }
  parentPort.postMessage(reply);
});
