import { execFileSync } from 'node:child_process';
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
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env: { ...process.env, [NATIVE_ENV]: '0' }, encoding: 'utf8' });
  return JSON.parse(out) as T & { status: NativeStatus };
}
