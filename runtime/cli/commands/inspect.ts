import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { allMachines } from '../../../actors/machines.ts';
import { startInspector } from '../../inspect/server.ts';
import { decodeTrace } from '../../inspect/trace.ts';
import { TalosError } from '../../errors.ts';
import { optionalString, output, UsageError, type CliCommand } from '../command.ts';

/** `talos inspect --trace FILE`: step through a recorded or simulated run in the browser. */
export const inspectCommands: CliCommand[] = [
  {
    name: 'inspect',
    summary: 'open the inspector page on a trace file (live runs: talos demo --inspect)',
    usage: 'talos inspect --trace FILE [--port N]',
    examples: [
      'talos inspect --trace sim-traces/gateway-crash-seed-7.jsonl',
      'talos inspect --trace run.jsonl --port 7777',
    ],
    options: [
      { name: 'trace', type: 'string', description: 'a trace file written by talos sim or a recording' },
      { name: 'port', type: 'string', description: 'port on 127.0.0.1 (0 picks a free one)', default: '0' },
    ],
    async run({ options }, ctx) {
      const file = optionalString(options, 'trace');
      if (!file) throw new UsageError('give --trace FILE, or watch a live run with "talos demo --inspect"');
      const port = Number(options.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be 0..65535');
      let text: string;
      try {
        text = readFileSync(resolve(ctx.cwd, file), 'utf8');
      } catch {
        throw new TalosError('trace_unreadable', `cannot read ${file}: check the path`);
      }
      const trace = decodeTrace(text);
      const inspector = await startInspector({ port, trace, machines: allMachines() });
      output(ctx, { url: inspector.url, events: trace.events.length }, () =>
        `inspector: ${inspector.url}  (${trace.events.length} events from ${trace.header.source}; Ctrl-C to stop)`,
      );
      await new Promise<void>((done) => process.once('SIGINT', done));
      await inspector.close();
      return 0;
    },
  },
];
