import t from 'tap';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket from 'ws';
import { createCryptoProvider } from '../crypto/index.ts';
import { generateIdentity } from '../identity/index.ts';
import { RPC_ERRORS } from '../mcp/errors.ts';
import type { RequestId } from '../mcp/jsonrpc.ts';
import { decodeEnvelope, initiateSession } from '../session/index.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { SessionChannel } from './channel.ts';
import { connectTunnel, fetchOffer, MAX_OFFER_BYTES, tunnelUrls } from './client.ts';
import { GatewayResponder } from './responder.ts';
import { CLOSE_OVERLOADED, MAX_INFLIGHT_PER_SESSION, OFFER_PATH, SEND_BUFFER_CLOSE_GRACE_MS, startTunnelServer, type TunnelHandlers, type TunnelPeer } from './server.ts';

// The tunnel's limits and lifecycle edges, on real servers, real sessions and the real SQLite
// session store: a peer that does not read, a session at its in-flight limit, a connection that
// drops while its session is being opened, and the agent side's refusals of bad offers.
const crypto = createCryptoProvider();
const gateway = generateIdentity(crypto);

async function startGw(handlers: TunnelHandlers, options: { maxSendBufferBytes?: number } = {}) {
  const store = new SqliteSessionStore({ path: ':memory:' });
  const server = await startTunnelServer({ host: '127.0.0.1', port: 0, responder: new GatewayResponder(crypto, gateway, store), sessions: store, handlers, ...options });
  t.teardown(async () => {
    await server.close();
    store.close();
  });
  return server;
}

async function until(cond: () => boolean, ms = 10_000): Promise<boolean> {
  for (const end = Date.now() + ms; !cond() && Date.now() < end; ) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

/** A raw agent: its socket and session channel, the session opened by a first message that was answered. */
async function openSession(url: string): Promise<{ ws: WebSocket; channel: SessionChannel; closed: Promise<number>; replies: string[] }> {
  const offer = await fetchOffer(tunnelUrls(url).offer);
  const channel = new SessionChannel(crypto, initiateSession(crypto, generateIdentity(crypto), { bundle: offer.bundle, opk: offer.opk! }, Date.now()));
  const ws = new WebSocket(url);
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const replies: string[] = [];
  const first = new Promise<void>((r) => ws.once('message', () => r()));
  ws.on('message', (d) => {
    try {
      const text = channel.open(decodeEnvelope(d.toString()), Date.now()).text;
      if (text !== undefined) replies.push(text);
    } catch {
      /* not for this test */
    }
  });
  ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', id: 'first', method: 'ping' })));
  await first;
  return { ws, channel, closed, replies };
}

t.test('a peer that sends but never reads is closed once its send buffer passes the limit', async (t) => {
  const LIMIT = 64 * 1024;
  const refused: string[] = [];
  const closes: string[] = [];
  const server = await startGw(
    {
      onRefused: (code) => void refused.push(code),
      onClose: (_p, reason) => void closes.push(reason),
      onMessage: async (_p, text) => text, // every request is answered with as many bytes
    },
    { maxSendBufferBytes: LIMIT },
  );
  const { ws, channel, closed } = await openSession(server.url);
  ws.pause(); // the agent stops reading
  const pad = 'p'.repeat(32 * 1024);
  // Far more than the kernel's socket buffers hold, so the rest queues in the gateway's memory.
  for (let i = 0; i < 2000 && !refused.includes('send_buffer_full'); i++) {
    ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'ping', params: { pad } })));
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
  }
  t.ok(await until(() => refused.includes('send_buffer_full')), 'refused as send_buffer_full');
  t.same(closes, ['detached'], 'the session left the connection (it may resume)');
  ws.resume(); // reading again, the agent finds the close code behind what was queued
  t.equal(await Promise.race([closed, new Promise((r) => setTimeout(() => r('still open'), 10_000))]), CLOSE_OVERLOADED);
  t.ok(await until(() => server.connections() === 0), 'the connection is gone');
});

t.test('a peer closed for send_buffer_full that never reads again is cut after the grace period', async (t) => {
  const refused: string[] = [];
  const server = await startGw({ onRefused: (code) => void refused.push(code), onMessage: async (_p, text) => text }, { maxSendBufferBytes: 64 * 1024 });
  const { ws, channel } = await openSession(server.url);
  ws.pause(); // and never resumes: the close handshake cannot complete
  const pad = 'p'.repeat(32 * 1024);
  for (let i = 0; i < 2000 && !refused.includes('send_buffer_full'); i++) {
    ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'ping', params: { pad } })));
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
  }
  t.ok(await until(() => refused.includes('send_buffer_full')), 'refused as send_buffer_full');
  t.equal(server.connections(), 1, 'the close is still waiting for the peer');
  // ws itself would keep the socket (and what is queued on it) for 30 s.
  t.ok(await until(() => server.connections() === 0, SEND_BUFFER_CLOSE_GRACE_MS + 8000), 'the socket is cut');
  ws.terminate();
});

t.test('at the in-flight limit requests are refused (and recorded); a cancellation still goes through', async (t) => {
  const held: (() => void)[] = [];
  const notifications: string[] = [];
  const overloaded: { request: { id: RequestId; method: string }; msgHash: string }[] = [];
  const server = await startGw({
    onOverloaded: async (_peer: TunnelPeer, request, msgHash) => void overloaded.push({ request, msgHash }),
    onMessage: async (_p, text) => {
      const m = JSON.parse(text) as { id?: RequestId; method: string };
      if (m.id === undefined) return void notifications.push(m.method);
      if (m.id === 'first') return JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} });
      await new Promise<void>((r) => held.push(r)); // a long call: in flight until released
      return JSON.stringify({ jsonrpc: '2.0', id: m.id, result: {} });
    },
  });
  const { ws, channel, replies } = await openSession(server.url);
  for (let i = 0; i < MAX_INFLIGHT_PER_SESSION; i++) ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', id: i, method: 'tools/call' })));
  t.ok(await until(() => held.length === MAX_INFLIGHT_PER_SESSION), 'the session is at its limit');
  ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 0 } })));
  ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', id: 'over', method: 'tools/call' })));
  t.ok(await until(() => replies.length === 2), 'the request over the limit is answered');
  t.same(notifications, ['notifications/cancelled'], 'the cancellation reached the handler');
  t.match(JSON.parse(replies[1]!), { id: 'over', error: { code: RPC_ERRORS.overloaded, data: { talos: { reason: 'overloaded' } } } });
  t.same(overloaded.map((o) => o.request), [{ id: 'over', method: 'tools/call' }], 'the refusal was recorded before it was answered');
  t.match(overloaded[0]!.msgHash, /^[A-Za-z0-9_-]{43}$/);
  for (const release of held.splice(0)) release();
  t.ok(await until(() => replies.length === 2 + MAX_INFLIGHT_PER_SESSION), 'the held requests are answered');
  ws.terminate();
});

t.test('a connection that drops while its session is being opened closes that session too', async (t) => {
  const events: string[] = [];
  let server: Awaited<ReturnType<typeof startGw>> | undefined;
  server = await startGw({
    onOpen: async (peer) => {
      events.push(`open ${peer.sid}`);
      // The audit of session_open is slow: the agent's connection is gone before it ends.
      await until(() => server!.connections() === 0);
    },
    onClose: (peer, reason) => void events.push(`${reason} ${peer.sid}`),
    onMessage: async () => undefined,
  });
  const offer = await fetchOffer(tunnelUrls(server.url).offer);
  const channel = new SessionChannel(crypto, initiateSession(crypto, generateIdentity(crypto), { bundle: offer.bundle, opk: offer.opk! }, Date.now()));
  const ws = new WebSocket(server.url);
  await new Promise((r) => ws.once('open', r));
  ws.send(channel.seal(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' })), () => ws.terminate());
  t.ok(await until(() => events.length === 2), 'open, then closed');
  t.same(events, [`open ${channel.sid}`, `detached ${channel.sid}`], 'whatever onOpen set up for it is released (it may resume)');
});

t.test('an offer larger than MAX_OFFER_BYTES is refused while it is read (an endless one too)', async (t) => {
  let aborted = false;
  const http = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"bundle":"');
    const chunk = 'x'.repeat(16 * 1024);
    const timer = setInterval(() => res.write(chunk), 1); // never ends
    req.socket.on('close', () => {
      aborted = true;
      clearInterval(timer);
    });
  });
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    http.closeAllConnections();
    http.close();
  });
  const started = Date.now();
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}${OFFER_PATH}`;
  await t.rejects(fetchOffer(url), { code: 'bad_offer', message: `the offer is larger than ${MAX_OFFER_BYTES} bytes` });
  t.ok(Date.now() - started < 5_000, 'refused as soon as the limit is passed');
  t.ok(await until(() => aborted, 5_000), 'the download was stopped');
});

t.test('a bundle the agent refuses (expired) leaves no socket open at the gateway', async (t) => {
  const server = await startGw({ onMessage: async () => undefined });
  const tenYears = 10 * 365 * 24 * 3600 * 1000;
  await t.rejects(connectTunnel({ url: server.url, identity: generateIdentity(crypto), crypto, now: () => Date.now() + tenYears }), { code: 'bundle_expired' });
  // The gateway would otherwise hold it until its handshake timeout (10 s).
  t.ok(await until(() => server.connections() === 0, 2_000), 'the socket opened for it was closed');
});
