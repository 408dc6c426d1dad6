import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { openAuditStore } from './audit.ts';
import { encodeToken, mintToken } from '../../runtime/capability/index.ts';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import { fromUtf8 } from '../../runtime/encoding/bytes.ts';
import { generateIdentity, saveKeyFile } from '../../runtime/identity/index.ts';
import { TalosClientTransport } from '../../runtime/mcp/client-transport.ts';
import { referenceServerScript } from '../../runtime/mcp/servers.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';

// A gateway process killed outright (SIGKILL) and started again on the same port with the same
// SQLite session store and key file: an SDK Client on TalosClientTransport goes on with its next
// call on the same session (no new handshake, no second session_open).
const here = dirname(fileURLToPath(import.meta.url));
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-resume-gw-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const gatewayId = generateIdentity(crypto);
saveKeyFile(join(dir, 'gateway.key'), gatewayId, { created: Date.now() });
const issuer = generateIdentity(crypto);
const spec = (port: number) => ({
  talos: {
    v: 1,
    gateway: { listen: { host: '127.0.0.1', port }, keyFile: 'gateway.key', name: 'talos.test/resume' },
    audit: { store: `sqlite:${join(dir, 'audit.sqlite')}` },
    trustedIssuers: [issuer.did],
    upstreams: [{ name: 'everything', transport: 'stdio', command: process.execPath, args: [referenceServerScript('server-everything'), 'stdio'] }],
  },
  sessions: join(dir, 'sessions.sqlite'),
});

let child: ChildProcess | undefined;
t.teardown(() => void child?.kill('SIGKILL'));

async function startChild(port: number): Promise<string> {
  const file = join(dir, 'gateway.json');
  writeFileSync(file, JSON.stringify(spec(port)));
  const p = spawn(process.execPath, ['--import', 'tsx', join(here, 'resume.child.ts'), file], { stdio: ['ignore', 'pipe', 'inherit'] });
  child = p;
  return new Promise<string>((resolve, reject) => {
    let out = '';
    p.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /READY (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    p.once('exit', (code) => reject(new Error(`the gateway exited (${code}) before serving`)));
  });
}

t.test('a SIGKILLed gateway restarted on the same store: the SDK client goes on on the same session', async (t) => {
  const url = await startChild(0);
  const port = Number(new URL(url).port);
  const agent = generateIdentity(crypto);
  const nowS = Math.floor(Date.now() / 1000);
  const token = encodeToken(mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: agent.did, aud: gatewayId.did, grants: [{ method: 'tools/call', tool: 'echo' }], nbf: nowS - 60, exp: nowS + 3600 }));
  const transport = new TalosClientTransport({ gateway: url, identity: agent, crypto, token, expectGatewayDid: gatewayId.did });
  const client = new Client({ name: 'resume-test-agent', version: '1.0.0' });
  await client.connect(transport);
  const echo = async (message: string) => ((await client.callTool({ name: 'echo', arguments: { message } })) as { content: { text: string }[] }).content[0]!.text;
  t.equal(await echo('before'), 'Echo: before');
  const sid = transport.sessionId;

  const killed = new Promise<void>((r) => child!.once('exit', () => r()));
  child!.kill('SIGKILL');
  await killed;
  t.equal(await startChild(port), url, 'the restarted gateway serves the same URL');

  t.equal(await echo('after'), 'Echo: after', 'the next call goes through the restarted gateway');
  t.equal(transport.sessionId, sid, 'on the same session');
  await client.close();

  const stopped = new Promise<void>((r) => child!.once('exit', () => r()));
  child!.kill('SIGTERM');
  await stopped;
  const store = await openAuditStore(`sqlite:${join(dir, 'audit.sqlite')}`, crypto);
  t.teardown(() => store.close());
  const events = (await store.readLeaves(0, 10_000)).map((l) => JSON.parse(fromUtf8(l.leaf)) as AuditEvent);
  const mine = events.filter((e) => e.from === agent.did || e.to === agent.did);
  t.equal(mine.filter((e) => e.kind === 'session_open').length, 1, 'one session_open for the agent');
  t.equal(mine.filter((e) => e.kind === 'request' && e.decision === 'allow' && e.tool === 'echo').length, 2, 'both calls audited');
  t.equal(mine.filter((e) => e.kind === 'session_close').length, 1, 'and one session_close, when the client closed it');
});
