import { execFileSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { NATIVE_ENV, type NativeStatus } from './native-addon.ts';

const here = (file: string) => JSON.stringify(new URL(`./${file}`, import.meta.url).href);

/**
 * Runs `body` (the statements of an async function returning a plain object) in a child Node
 * with the addon turned off (TALOS_NATIVE=0), as a Node without it would run: `c` is a fresh
 * node provider, `code(f)` gives f()'s bytes as hex or its error code, and `hex`, `toHexString`
 * and `wycheproof` come from vector-files.ts. Returns that object and `status`, the export
 * `statusName` of `statusFile` in the child.
 */
export function runWithoutAddon<T extends object>(statusFile: string, statusName: string, body: string): T & { status: NativeStatus } {
  const script = `
    const { ${statusName}: status } = await import(${here(statusFile)});
    const { createNodeProvider } = await import(${here('node.ts')});
    const { hex, toHexString, wycheproof } = await import(${here('vector-files.ts')});
    const c = createNodeProvider();
    const code = (f) => { try { return toHexString(f()); } catch (e) { return e.code; } };
    console.log(JSON.stringify({ status, ...(await (async () => { ${body} })()) }));`;
  return JSON.parse(runScript(script, { [NATIVE_ENV]: '0' })) as T & { status: NativeStatus };
}

/** Runs `script` (an ES module, TypeScript imports allowed) in a child Node with `env` added; returns what it printed. */
export function runScript(script: string, env: NodeJS.ProcessEnv = {}): string {
  return execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
}

/**
 * A worker thread that imports the export `name` of `file` (through the project's TypeScript
 * loader), posts 'ready', runs `loop` (statements over `i` that count failures in `bad`, with
 * `imports` in scope) `rounds` times, then posts `bad`. `next()` is the worker's next message.
 */
export function loopInWorker(file: string, name: string, imports: string, loop: string, rounds: number): { worker: Worker; next: () => Promise<unknown> } {
  const worker = new Worker(
    `${imports}
     import { workerData, parentPort } from 'node:worker_threads';
     await import(workerData.loader);
     const { ${name} } = await import(workerData.module);
     parentPort.postMessage('ready');
     let bad = 0;
     for (let i = 0; i < workerData.rounds; i++) { ${loop} }
     parentPort.postMessage(bad);`,
    { eval: true, workerData: { rounds, module: new URL(`./${file}`, import.meta.url).href, loader: new URL('../../workers/typescript-loader.mjs', import.meta.url).href } },
  );
  const next = () => new Promise<unknown>((resolve, reject) => worker.once('message', resolve).once('error', reject));
  return { worker, next };
}
