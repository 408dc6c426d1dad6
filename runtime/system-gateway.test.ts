import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import WebSocket from 'ws';
import { encodeToken, mintToken } from './capability/index.ts';
import { createCryptoProvider } from './crypto/index.ts';
import { generateIdentity } from './identity/index.ts';
import { TalosClientTransport } from './mcp/client-transport.ts';
import { withCapability } from './mcp/meta.ts';
import { sha256b64u } from './mcp/pipeline.ts';
import { SessionChannel } from './net/channel.ts';
import { fetchOffer, tunnelUrls } from './net/client.ts';
import { decodeEnvelope, initiateSession } from './session/index.ts';
import { createRuntime } from './index.ts';
import { auditEvents, connectAgent, eventually, text, tunnelConfig } from './system-test-kit.ts';

// The supervised gateway (createRuntime) runs the one gateway service: responses are audited
// under the hash of the sealed envelope that carries them, progress is relayed, a cancelled
// request is aborted, and a gateway the TGA restarts keeps its sessions (SPEC 9.2.1).
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-system-gateway-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const issuer = generateIdentity(crypto);
const grants = [
  { method: 'tools/call', tool: 'echo' },
  { method: 'tools/call', tool: 'trigger-long-running-operation' },
];

const runtime = await createRuntime({
  talos: tunnelConfig(issuer, { audit: { store: `sqlite:${join(dir, 'audit.sqlite')}` } }),
  crypto,
  sessionStorePath: join(dir, 'sessions.sqlite'),
  jobs: false,
});
t.teardown(() => runtime.stop());

t.test('a response is audited under the hash of the sealed frame that carried it', async (t) => {
  const agent = generateIdentity(crypto);
  const nowS = Math.floor(Date.now() / 1000);
  const token = encodeToken(mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: agent.did, aud: runtime.did!, grants, nbf: nowS - 60, exp: nowS + 3600 }));
  const urls = tunnelUrls(runtime.gatewayUrl!);
  const channel = new SessionChannel(crypto, initiateSession(crypto, agent, await fetchOffer(urls.offer), Date.now()));
  const ws = new WebSocket(urls.ws);
  t.teardown(() => ws.terminate());
  await new Promise((r) => ws.once('open', r));
  const frame = await new Promise<string>((resolve) => {
    ws.once('message', (d) => resolve(d.toString()));
    ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: withCapability({ name: 'echo', arguments: { message: 'sealed' } }, token) })));
  });
  t.match(channel.open(decodeEnvelope(frame), Date.now()).text, /Echo: sealed/);
  const response = (await auditEvents(runtime)).find((e) => e.kind === 'response' && e.to === agent.did);
  t.equal(response?.msg_hash, sha256b64u(frame), 'the response event names the envelope the agent received');
});

t.test('progress is relayed and a cancelled request is aborted upstream', async (t) => {
  const { client } = await connectAgent(runtime, crypto, issuer, grants);
  t.teardown(() => client.close());
  const seen: number[] = [];
  const r = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } }, undefined, {
    onprogress: (p) => void seen.push(p.progress),
  });
  t.match(text(r), /completed/i);
  t.ok(seen.length >= 2, `progress relayed (${seen.join(', ')})`);

  const controller = new AbortController();
  const pending = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 3 } }, undefined, { signal: controller.signal });
  // Cancel once the gateway has forwarded the call (its request event is audited first).
  await eventually(async () => ((await auditEvents(runtime)).some((e) => e.kind === 'request' && e.tool === 'trigger-long-running-operation' && e.decision === 'allow') ? true : undefined));
  controller.abort('stop');
  await t.rejects(pending);
  const cancelled = await eventually(async () => ((await auditEvents(runtime)).some((e) => e.kind === 'response' && e.reason === 'cancelled') ? true : undefined));
  t.ok(cancelled, 'the response event records the cancellation');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'still fine' } })), 'Echo: still fine');
});

t.test('a gateway the TGA restarts keeps its sessions', async (t) => {
  const identity = generateIdentity(crypto);
  const nowS = Math.floor(Date.now() / 1000);
  const token = encodeToken(mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: identity.did, aud: runtime.did!, grants, nbf: nowS - 60, exp: nowS + 3600 }));
  const transport = new TalosClientTransport({ gateway: runtime.gatewayUrl!, identity, crypto, token, expectGatewayDid: runtime.did! });
  const client = new Client({ name: 'resume-agent', version: '1.0.0' });
  await client.connect(transport);
  t.teardown(() => client.close());
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'one' } })), 'Echo: one');
  const url = runtime.gatewayUrl;
  const sid = transport.sessionId;
  await runtime.restart('gateway');
  t.equal(runtime.gatewayUrl, url, 'the restarted gateway serves the same URL');
  // (A message sent before the agent has noticed the drop would be lost with the old socket.)
  t.ok(await eventually(() => (transport.connected ? undefined : true)), 'the agent noticed the drop');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'two' } })), 'Echo: two', 'the open session goes on');
  t.equal(transport.sessionId, sid, 'on the same session');
  const mine = (await auditEvents(runtime)).filter((e) => e.from === identity.did);
  t.equal(mine.filter((e) => e.kind === 'session_open').length, 1, 'resumed, not opened again');
  t.equal(mine.filter((e) => e.kind === 'request' && e.tool === 'echo').length, 2);
});
