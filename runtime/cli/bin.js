#!/usr/bin/env node
// The `talos` executable. The package ships TypeScript sources; tsx compiles them on load.
import { register } from 'tsx/esm/api';

register();
const { runCli, processContext } = await import('./main.ts');
const code = await runCli(process.argv.slice(2), processContext());
process.exitCode = code;
