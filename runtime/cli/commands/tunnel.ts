import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { InspectionEvent } from 'xstate';
import { runDemo, type DemoResult } from '../../../actors/gateway/demo.ts';
import { startGateway, type Gateway } from '../../../actors/gateway/index.ts';
import { encodeToken, parseTokenText } from '../../capability/index.ts';
import { loadConfig } from '../../config/config.ts';
import { createCryptoProvider } from '../../crypto/index.ts';
import { loadKeyFile, normalizeDid } from '../../identity/index.ts';
import { TalosClientTransport } from '../../mcp/client-transport.ts';
import { TunnelError } from '../../mcp/errors.ts';
import { startLiveInspector } from '../../inspect/live.ts';
import { optionalString, output, requireString, UsageError, type CliCommand, type CliContext } from '../command.ts';

/**
 * The tunnel's commands: `talos demo` (the README's main job), `talos gateway` (serve a
 * talos.config.json) and `talos connect` (a local stdio MCP server that forwards everything
 * through a Talos session, so any MCP client that launches stdio servers uses Talos by
 * changing one command line).
 */

/** Longest wait before each demo call (--pause). */
export const MAX_DEMO_PAUSE_MS = 60_000;

/** Largest token file read. */
export const MAX_TOKEN_FILE_BYTES = 256 * 1024;

function readToken(path: string): string {
  let text: string;
  try {
    const buf = readFileSync(path);
    if (buf.length > MAX_TOKEN_FILE_BYTES) throw new TunnelError('token_file_invalid', `${path} is larger than ${MAX_TOKEN_FILE_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof TunnelError) throw err;
    throw new TunnelError('token_file_unreadable', `${path}: ${(err as NodeJS.ErrnoException).code ?? 'cannot be read'}`);
  }
  // Either form is accepted in the file; the compact form travels.
  return encodeToken(parseTokenText(text));
}

function printDemo(r: DemoResult): string {
  const lines = [
    '',
    `folder   ${r.folder} (temporary)`,
    `gateway  ${r.gateway}`,
    `agent    ${r.agent}`,
    `grant    read_text_file, list_directory under ${r.grant}`,
    `tools/list as the agent sees it: ${r.tools.join(', ')}`,
    '',
    ...r.calls.map((c) => `  ${c.outcome === 'allowed' ? 'allowed' : 'REFUSED'}  ${c.call.padEnd(42)} ${c.detail}`),
    '',
    'signed audit checkpoint (C2SP tlog-checkpoint):',
    ...r.checkpoint.trimEnd().split('\n').map((l) => `  ${l}`),
    '',
    `inclusion proof for leaf ${r.proof.leafIndex} of ${r.proof.treeSize} (${r.proof.event.method} ${r.proof.event.tool}, ${r.proof.event.decision}):`,
    ...r.proof.path.map((p) => `  ${p}`),
    `  verified against the checkpoint's root with the gateway's public key: ${r.proof.verified ? 'yes' : 'NO'}`,
  ];
  return lines.join('\n');
}

/** Serves until SIGINT/SIGTERM (or `until` resolves, for tests). */
export async function serveGateway(
  configPath: string,
  ctx: CliContext,
  until?: Promise<void>,
  inspect?: (event: InspectionEvent) => void,
  sessionStorePath?: string,
): Promise<Gateway> {
  const config = loadConfig(configPath, ctx.env);
  for (const o of config.overrides) ctx.stderr(`config: ${o}\n`);
  const gw = await startGateway({ config, log: (l) => ctx.stderr(`${l}\n`), ...(inspect ? { inspect } : {}), ...(sessionStorePath ? { sessionStorePath } : {}) });
  output(ctx, { did: gw.did, url: gw.url, limits: gw.limits.kind, upstreams: gw.upstreams.map((u) => ({ name: u.name, tools: u.tools().length })) }, () => `gateway ${gw.did} serving on ${gw.url}`);
  const stopped = until ?? new Promise<void>((done) => {
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  void stopped.then(() => gw.stop());
  return gw;
}

export const tunnelCommands: CliCommand[] = [
  {
    name: 'demo',
    summary: 'run a gateway in front of the real MCP filesystem server and show allowed, refused and audited calls',
    usage: 'talos demo [--inspect] [--port N] [--pause MS] [--json]',
    examples: ['talos demo', 'talos demo --inspect --pause 1500', 'talos demo --json | jq .proof.verified'],
    options: [
      { name: 'inspect', type: 'boolean', description: 'serve the live inspector page while the demo runs (and after, until Ctrl-C)' },
      { name: 'port', type: 'string', description: 'inspector port on 127.0.0.1 (0 picks a free one)', default: '0' },
      { name: 'pause', type: 'string', description: 'milliseconds to wait before each call (to watch it in the inspector)', default: '0' },
    ],
    async run({ options }, ctx) {
      const port = Number(options.port);
      const pause = Number(options.pause);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be an integer 0..65535');
      if (!Number.isInteger(pause) || pause < 0 || pause > MAX_DEMO_PAUSE_MS) throw new UsageError(`--pause must be an integer 0..${MAX_DEMO_PAUSE_MS}`);
      const live = options.inspect ? await startLiveInspector({ port }) : undefined;
      if (live) ctx.stderr(`inspector: ${live.url}  (open it in a browser)\n`);
      const result = await runDemo(
        (l) => {
          if (!ctx.json) ctx.stderr(`${l}\n`);
        },
        {
          ...(live ? { inspect: live.inspect } : {}),
          ...(pause > 0 ? { beforeCall: () => new Promise<void>((done) => setTimeout(done, pause)) } : {}),
        },
      );
      output(ctx, { ...result, ...(live ? { inspector: live.url } : {}) }, () => printDemo(result));
      if (live) {
        ctx.stderr(`inspector still serving the recorded run at ${live.url} (step through it with the slider); Ctrl-C to stop\n`);
        await new Promise<void>((done) => {
          process.once('SIGINT', done);
          process.once('SIGTERM', done);
        });
        await live.close();
      }
      return result.proof.verified ? 0 : 1;
    },
  },
  {
    name: 'gateway',
    summary: 'serve the MCP security tunnel described by a talos.config.json',
    usage: 'talos gateway --config talos.config.json [--sessions FILE] [--inspect] [--inspect-port N]',
    examples: [
      'talos gateway --config talos.config.json',
      'talos gateway -c talos.config.json --sessions ./sessions.sqlite',
      'TALOS_REDIS_URL=redis://127.0.0.1:6379 talos gateway -c talos.config.json',
      'talos gateway -c talos.config.json --inspect --inspect-port 7777',
    ],
    options: [
      { name: 'config', short: 'c', type: 'string', description: 'the configuration file', default: 'talos.config.json' },
      { name: 'sessions', type: 'string', description: 'SQLite file of the session store: agents resume their sessions after a gateway restart (default: in memory, not resumable after one)' },
      { name: 'inspect', type: 'boolean', description: "serve the live inspector page (the gateway's actors) on 127.0.0.1" },
      { name: 'inspect-port', type: 'string', description: 'inspector port (0 picks a free one)', default: '0' },
    ],
    async run({ options }, ctx) {
      const sessions = typeof options.sessions === 'string' ? resolve(ctx.cwd, options.sessions) : undefined;
      const inspectPort = Number(options['inspect-port']);
      if (!Number.isInteger(inspectPort) || inspectPort < 0 || inspectPort > 65535) throw new UsageError('--inspect-port must be an integer 0..65535');
      const live = options.inspect ? await startLiveInspector({ port: inspectPort }) : undefined;
      if (live) ctx.stderr(`inspector: ${live.url}\n`);
      try {
        const gw = await serveGateway(resolve(ctx.cwd, requireString(options, 'config')), ctx, undefined, live?.inspect, sessions);
        await new Promise<void>((done) => gw.actor.subscribe({ complete: done }));
      } finally {
        await live?.close();
      }
      return 0;
    },
  },
  {
    name: 'connect',
    summary: 'a local stdio MCP server that forwards everything through a Talos session to a gateway',
    usage: 'talos connect --gateway ws://HOST:PORT --key AGENT.key.json --token TOKEN [--gateway-did DID]',
    examples: [
      'talos connect --gateway ws://127.0.0.1:7800 --key agent.key.json --token agent.token',
      '# in an MCP client config: { "command": "talos", "args": ["connect", "--gateway", "ws://…", "--key", "…", "--token", "…"] }',
    ],
    options: [
      { name: 'gateway', short: 'g', type: 'string', description: 'the gateway URL (ws:// or wss://)' },
      { name: 'key', short: 'k', type: 'string', description: "the agent's identity key file" },
      { name: 'token', short: 't', type: 'string', description: 'a file holding the capability token (compact or JSON)' },
      { name: 'gateway-did', type: 'string', description: "refuse any gateway whose bundle is not signed by this DID" },
    ],
    async run({ options }, ctx) {
      const crypto = createCryptoProvider();
      const identity = loadKeyFile(crypto, resolve(ctx.cwd, requireString(options, 'key')));
      const token = readToken(resolve(ctx.cwd, requireString(options, 'token')));
      const expected = optionalString(options, 'gateway-did');
      const tunnel = new TalosClientTransport({
        gateway: requireString(options, 'gateway'),
        identity,
        crypto,
        token,
        ...(expected ? { expectGatewayDid: normalizeDid(expected) } : {}),
      });
      // Standard output is the MCP channel: every diagnostic goes to standard error.
      const stdio = new StdioServerTransport();
      await tunnel.start();
      ctx.stderr(`talos connect: session with ${tunnel.gatewayDid ?? 'gateway'} open\n`);
      const done = new Promise<void>((resolveDone) => {
        let finished = false;
        const finish = () => {
          if (finished) return;
          finished = true;
          void Promise.allSettled([stdio.close(), tunnel.close()]).then(() => resolveDone());
        };
        stdio.onmessage = (m: JSONRPCMessage) => {
          tunnel.send(m).catch((err: unknown) => {
            ctx.stderr(`talos connect: ${(err as Error).message}\n`);
            finish();
          });
        };
        tunnel.onmessage = (m) => void stdio.send(m).catch(() => finish());
        stdio.onclose = finish;
        tunnel.onclose = finish;
        process.stdin.once('end', finish);
      });
      await stdio.start();
      await done;
      return 0;
    },
  },
];
