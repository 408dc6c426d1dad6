import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { encodeToken, mintToken } from '../../capability/index.ts';
import { createCryptoProvider } from '../../crypto/index.ts';
import { generateIdentity, saveKeyFile } from '../../identity/index.ts';
import { referenceServerScript } from '../../mcp/servers.ts';
import type { CliContext } from '../command.ts';
import { runCli } from '../main.ts';
import { serveGateway, tunnelCommands } from './tunnel.ts';

const dir = mkdtempSync(join(tmpdir(), 'talos-cli-tunnel-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function capture(env: NodeJS.ProcessEnv = {}): { ctx: CliContext; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    ctx: { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env, cwd: dir, json: false, interactive: false },
    out: () => out,
    err: () => err,
  };
}

t.test('talos demo: allowed and refused calls, a checkpoint and a verified inclusion proof', async (t) => {
  const c = capture();
  const code = await runCli(['demo', '--json'], c.ctx, tunnelCommands);
  t.equal(code, 0);
  const r = JSON.parse(c.out());
  t.same(r.calls.map((x: { outcome: string }) => x.outcome), ['allowed', 'allowed', 'refused', 'refused', 'refused']);
  t.same(r.tools.sort(), ['list_directory', 'read_text_file']);
  t.match(r.checkpoint, /^talos\.demo\/audit\n\d+\n/);
  t.equal(r.proof.verified, true);
  t.equal(r.proof.event.decision, 'allow');
});

t.test('talos gateway: a bad config is refused naming the field', async (t) => {
  const file = join(dir, 'bad.config.json');
  writeFileSync(file, JSON.stringify({ v: 1, gateway: { listen: { port: 'x' } }, trustedIssuers: [], upstreams: [] }));
  const c = capture();
  t.equal(await runCli(['gateway', '--config', file], c.ctx, tunnelCommands), 1);
  t.match(c.err(), /config_invalid.*gateway\.listen\.port/);
});

t.test('talos gateway + talos connect: an SDK StdioClientTransport client through the tunnel', async (t) => {
  const crypto = createCryptoProvider();
  const issuer = generateIdentity(crypto);
  const gatewayId = generateIdentity(crypto);
  const agent = generateIdentity(crypto);
  const gwKey = join(dir, 'gateway.key.json');
  const agentKey = join(dir, 'agent.key.json');
  saveKeyFile(gwKey, gatewayId, { created: Date.now() });
  saveKeyFile(agentKey, agent, { created: Date.now() });
  const configFile = join(dir, 'talos.config.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      v: 1,
      gateway: { listen: { port: 0 }, keyFile: 'gateway.key.json' },
      trustedIssuers: [],
      upstreams: [{ name: 'everything', transport: 'stdio', command: 'node', args: [referenceServerScript('server-everything'), 'stdio'] }],
    }),
  );
  const c = capture({ TALOS_TRUSTED_ISSUERS: issuer.did });
  let stop!: () => void;
  const gw = await serveGateway(configFile, c.ctx, new Promise<void>((r) => (stop = r)));
  t.teardown(async () => {
    stop();
    await new Promise<void>((r) => gw.actor.subscribe({ complete: r }));
  });
  t.equal(gw.did, gatewayId.did, 'the identity comes from the key file');
  t.match(c.err(), /trustedIssuers \(from TALOS_TRUSTED_ISSUERS\)/);
  t.match(c.err(), /limits: in-process \(no Redis configured\)/, 'says the limits are in-process');

  const nowS = Math.floor(Date.now() / 1000);
  const tokenFile = join(dir, 'agent.token');
  writeFileSync(tokenFile, encodeToken(mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: agent.did, aud: gw.did, grants: [{ method: 'tools/call', tool: 'echo' }], nbf: nowS - 5, exp: nowS + 600 })));

  const bin = fileURLToPath(new URL('../bin.js', import.meta.url));
  const transport = new StdioClientTransport({
    command: process.execPath,
    args: [bin, 'connect', '--gateway', gw.url.replace(/\/talos\/v1\/tunnel$/, ''), '--key', agentKey, '--token', tokenFile, '--gateway-did', gw.did],
    stderr: 'pipe',
  });
  const client = new Client({ name: 'stdio-client', version: '1' });
  await client.connect(transport);
  t.teardown(() => client.close());
  t.same((await client.listTools()).tools.map((x) => x.name), ['echo']);
  const r = (await client.callTool({ name: 'echo', arguments: { message: 'via talos connect' } })) as { content: { text: string }[] };
  t.equal(r.content[0]!.text, 'Echo: via talos connect');
  await t.rejects(client.callTool({ name: 'get-env', arguments: {} }), McpError, 'refusals come back as JSON-RPC errors');
});
