#!/usr/bin/env -S node --max-semi-space-size=32
// The `talos` executable. The package ships TypeScript sources; tsx compiles them on load.
// V8's young generation at twice its default (semi-spaces of 32 MiB): a gateway allocates
// ~0.1 MB per call and keeps every session's state alive, so each scavenge pauses for about as
// long whatever its size; doubling it halves how often a call waits for one (the p99 of
// `npm run bench -- tunnel`), for at most 32 MiB more memory per thread. Started with plain
// `node`, pass the flag yourself (README, "The talos command").
import { register } from 'tsx/esm/api';

register();
const { runCli, processContext } = await import('./main.ts');
const code = await runCli(process.argv.slice(2), processContext());
process.exitCode = code;
