import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { resolveConfig } from '../../runtime/config/config.ts';
import { startGateway } from './index.ts';

// A stand-alone gateway in its own process, for the resume test (which SIGKILLs it):
// argv[2] is a JSON file { talos: <raw config>, sessions: <session store path> }.
// Prints `READY <url>` once serving; stops cleanly on SIGTERM.
const file = process.argv[2]!;
const spec = JSON.parse(readFileSync(file, 'utf8')) as { talos: unknown; sessions: string };
const config = resolveConfig(spec.talos, { baseDir: dirname(file) });
const gw = await startGateway({ config, sessionStorePath: spec.sessions });
process.stdout.write(`READY ${gw.url}\n`);
process.once('SIGTERM', () => void gw.stop().then(() => process.exit(0)));
