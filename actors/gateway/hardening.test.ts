import t from 'tap';
import type WebSocket from 'ws';
import type { Socket } from 'node:net';
import { encodeToken, mintToken, type Grant } from '../../runtime/capability/index.ts';
import { resolveConfig } from '../../runtime/config/config.ts';
import { generateIdentity } from '../../runtime/identity/index.ts';
import { RPC_ERRORS } from '../../runtime/mcp/errors.ts';
import { referenceServerScript } from '../../runtime/mcp/servers.ts';
import { SessionChannel } from '../../runtime/net/channel.ts';
import { openGateway } from '../../runtime/net/client.ts';
import { CLOSE_OVERLOADED, MAX_INFLIGHT_PER_SESSION } from '../../runtime/net/server.ts';
import { decodeEnvelope, initiateSession } from '../../runtime/session/index.ts';
import { recordingTransport, startKit } from './test-kit.ts';

// Session lifecycle edges through a real gateway to the real server-everything, with raw
// sessions on the agent side (frames timed as a misbehaving or unlucky agent would send them).
const everything = { name: 'everything', transport: 'stdio', command: 'node', args: [referenceServerScript('server-everything'), 'stdio'] };
const upstreamConfig = resolveConfig({ v: 1, gateway: { listen: { port: 0 } }, trustedIssuers: [], upstreams: [everything] }, { baseDir: process.cwd() }).upstreams[0]!;
const sent: string[] = [];
const kit = await startKit({
  upstreams: [everything],
  transports: { everything: recordingTransport(upstreamConfig, sent) },
  limits: { rate: { capacity: 10_000, refillPerSecond: 1_000 } },
});
t.teardown(() => kit.close());

async function until(cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (await cond()) return true;
  return cond();
}

/** A raw agent with a token for `grants`, its session opened by a ping that was answered. */
async function agent(grants: Grant[]) {
  const identity = generateIdentity(kit.crypto);
  const nowS = Math.floor(Date.now() / 1000);
  const token = encodeToken(mintToken(kit.crypto, { issuerKey: kit.issuer.sig.secretKey, sub: identity.did, aud: kit.gw.did, grants, nbf: nowS - 60, exp: nowS + 3600 }));
  const { offer, ws } = await openGateway({ url: kit.gw.url });
  const channel = new SessionChannel(kit.crypto, initiateSession(kit.crypto, identity, { bundle: offer.bundle, opk: offer.opk! }, Date.now()));
  const replies: { id?: unknown; error?: { code: number; data?: unknown } }[] = [];
  ws.on('message', (d) => {
    try {
      const text = channel.open(decodeEnvelope(d.toString()), Date.now()).text;
      if (text !== undefined) replies.push(JSON.parse(text));
    } catch {
      /* not for this test */
    }
  });
  const closed = new Promise<void>((r) => ws.once('close', () => r()));
  const request = (id: unknown, method: string, params?: Record<string, unknown>) =>
    channel.seal(JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params: { ...params, _meta: { 'talos/capability': token } } } : {}) }));
  ws.send(request('open', 'ping'));
  await until(() => replies.length > 0);
  return { ws, channel, replies, closed, request, did: identity.did };
}

const hub = () => kit.gw.pipeline['hub'];
const socketOf = (ws: WebSocket) => (ws as unknown as { _socket: Socket })._socket;

t.test('a request and the close frame in one read: the closed session is not attached again and nothing reaches the upstream', async (t) => {
  const a = await agent([{ method: 'tools/call', tool: 'echo' }]);
  t.ok(hub().has(a.channel.sid), 'attached on open');
  const marker = `after-close-${Date.now()}`;
  const call = a.request('late', 'tools/call', { name: 'echo', arguments: { message: marker } });
  const notification = a.channel.seal(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  const close = a.channel.sealClose('bye');
  // One TCP segment: the gateway opens all three frames in the same turn, before any is dispatched.
  socketOf(a.ws).cork();
  a.ws.send(notification);
  a.ws.send(call);
  a.ws.send(close);
  socketOf(a.ws).uncork();
  await a.closed;
  await new Promise((r) => setTimeout(r, 500)); // time for a stray dispatch to reach the upstream
  t.notOk(hub().has(a.channel.sid), 'the notification hub holds no entry for the closed session');
  t.notOk(sent.some((m) => m.includes(marker)), 'the request sealed before the close was not forwarded');
  const events = (await kit.events()).map((e) => e.event);
  t.notOk(events.some((e) => e.method === 'tools/call' && e.from === a.did), 'nor decided on');
  t.ok(events.some((e) => e.kind === 'session_close' && e.from === a.did), 'the close is audited');
});

t.test("a response whose agent dropped mid-call is audited all the same", async (t) => {
  const a = await agent([{ method: 'tools/call', tool: 'trigger-long-running-operation' }]);
  a.ws.send(a.request(1, 'tools/call', { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 2 } }));
  await new Promise((r) => setTimeout(r, 300));
  a.ws.terminate(); // the network drops; the session stays resumable
  const responded = async () =>
    (await kit.events()).some((e) => e.event.kind === 'response' && e.event.method === 'tools/call' && e.event.tool === 'trigger-long-running-operation' && e.event.reason === 'ok');
  t.ok(await until(responded), 'the upstream response event is in the audit log');
  t.notOk(hub().has(a.channel.sid), 'the dropped session is not attached');
});

t.test('an id reused while in flight: one finishing leaves the other cancellable', async (t) => {
  const a = await agent([{ method: 'tools/call', tool: 'trigger-long-running-operation' }]);
  const call = (duration: number) => a.request('dup', 'tools/call', { name: 'trigger-long-running-operation', arguments: { duration, steps: 1 } });
  a.ws.send(call(1));
  a.ws.send(call(4));
  t.ok(await until(() => a.replies.some((r) => r.id === 'dup')), 'the short one is answered');
  a.ws.send(a.channel.seal(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'dup', reason: 'user gave up' } })));
  const cancelled = async () => (await kit.events()).some((e) => e.event.kind === 'response' && e.event.to === a.did && e.event.reason === 'cancelled');
  t.ok(await until(cancelled), 'the long one is aborted and audited as cancelled');
  await new Promise((r) => setTimeout(r, 4500)); // past the long one's own end
  t.equal(a.replies.filter((r) => r.id === 'dup').length, 1, 'and gets no reply');
  a.ws.terminate();
});

t.test('at the in-flight limit: the refusal is audited, and a cancellation still aborts its request', async (t) => {
  const a = await agent([{ method: 'tools/call', tool: 'trigger-long-running-operation' }]);
  for (let i = 0; i < MAX_INFLIGHT_PER_SESSION; i++) a.ws.send(a.request(i, 'tools/call', { name: 'trigger-long-running-operation', arguments: { duration: 3, steps: 1 } }));
  const forwarded = () => sent.filter((m) => m.includes('trigger-long-running-operation')).length >= MAX_INFLIGHT_PER_SESSION;
  t.ok(await until(forwarded), 'every request is in flight upstream');
  a.ws.send(a.request('over', 'ping'));
  a.ws.send(a.channel.seal(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 0, reason: 'user gave up' } })));
  t.ok(await until(() => a.replies.some((r) => r.id === 'over')), 'the request over the limit is answered');
  t.match(
    a.replies.find((r) => r.id === 'over'),
    { error: { code: RPC_ERRORS.overloaded, data: { talos: { reason: 'overloaded' } } } },
  );
  const events = async () => (await kit.events()).map((e) => e.event).filter((e) => e.from === a.did || e.to === a.did);
  t.ok((await events()).some((e) => e.kind === 'request' && e.method === 'ping' && e.decision === 'deny' && e.reason === 'overloaded'), 'the overloaded refusal is audited');
  t.ok(await until(async () => (await events()).some((e) => e.kind === 'response' && e.reason === 'cancelled')), 'the cancelled request is aborted and audited');
  t.ok(await until(() => a.replies.length >= 1 + MAX_INFLIGHT_PER_SESSION), 'the others are answered');
  t.notOk(a.replies.some((r) => r.id === 0), 'the cancelled request gets no reply');
  a.ws.terminate();
});

t.test('an agent that never reads is closed past MAX_SEND_BUFFER_BYTES and its session released', async (t) => {
  const a = await agent([{ method: 'tools/call' }]); // tools/list answers ~10 KB: the buffer fills fast
  const sessions = () => kit.gw.actor.getSnapshot().context.sessions;
  const before = sessions();
  let code = 0;
  a.ws.on('close', (c) => void (code = c));
  a.ws.pause(); // the agent stops reading
  for (let i = 0; i < 4_000 && hub().has(a.channel.sid); i++) {
    a.ws.send(a.request(i, 'tools/list', {}));
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
  }
  t.ok(await until(() => !hub().has(a.channel.sid), 5_000), 'the session left the notification hub');
  t.equal(sessions(), before - 1, 'and the gateway counts it closed');
  a.ws.resume();
  t.ok(await until(() => code !== 0, 10_000), 'the agent, reading again, finds the connection closed');
  t.equal(code, CLOSE_OVERLOADED);
});
