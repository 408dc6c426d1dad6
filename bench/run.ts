import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { printTable, writeResult, type Benchmark } from './harness.ts';

/** `npm run bench -- <name> [args…]` runs bench/<name>.bench.ts and writes bench/results/<name>.json. */
const here = dirname(fileURLToPath(import.meta.url));
const available = readdirSync(here)
  .filter((f) => f.endsWith('.bench.ts'))
  .map((f) => f.slice(0, -'.bench.ts'.length));

const [name, ...args] = process.argv.slice(2);
if (!name || !available.includes(name)) {
  console.error(`usage: npm run bench -- <name>\navailable: ${available.join(', ') || '(none)'}`);
  process.exit(2);
}
const mod = (await import(pathToFileURL(join(here, `${name}.bench.ts`)).href)) as { default: Benchmark };
const result = writeResult(name, await mod.default(args));
printTable(result);
console.log(`wrote bench/results/${name}.json`);
process.exit(0);
