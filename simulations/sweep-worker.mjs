// Worker entry of a threaded sweep (sweep-threads.ts). Node 20 cannot load .ts files by itself:
// when the parent did not pass a TypeScript loader down (execArgv; bin.js registers tsx in its
// own thread only), register tsx here, the way workers/crypto-worker.mjs does, with the same
// throwaway probe so a failed import (which Node caches) never touches a real module.
import { parentPort, workerData } from 'node:worker_threads';

try {
  await import('../workers/ts-probe.ts');
} catch (err) {
  if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
  const { register } = await import('tsx/esm/api');
  register();
}
const { runScenario, sweptRun } = await import('./runner.ts');

// One task at a time: the next one is posted only after this reply (fake timers are per thread).
parentPort.on('message', async ({ scenario, seed }) => {
  let reply;
  try {
    reply = { run: sweptRun(await runScenario(scenario, seed, workerData.options)) };
  } catch (err) {
    reply = { threw: err instanceof Error ? `${err.name}: ${err.message}` : String(err) };
  }
  parentPort.postMessage(reply);
});
