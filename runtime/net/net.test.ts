import t from 'tap';
import WebSocket from 'ws';
import { createCryptoProvider } from '../crypto/index.ts';
import { generateIdentity } from '../identity/index.ts';
import { initiateSession } from '../session/index.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { SessionChannel } from './channel.ts';
import { connectTunnel, fetchOffer, tunnelUrls } from './client.ts';
import { GatewayResponder } from './responder.ts';
import { CLOSE_BAD_FRAME, CLOSE_HANDSHAKE_REFUSED, OFFER_PATH, startTunnelServer, type TunnelPeer } from './server.ts';
import { TalosClientTransport } from '../mcp/client-transport.ts';

// The tunnel's wire, with real sessions (runtime/session) and the real SQLite session store.
const crypto = createCryptoProvider();
const gateway = generateIdentity(crypto);
const store = new SqliteSessionStore({ path: ':memory:' });
const opened: TunnelPeer[] = [];
const refused: string[] = [];
const server = await startTunnelServer({
  host: '127.0.0.1',
  port: 0,
  responder: new GatewayResponder(crypto, gateway, store),
  sessions: store,
  handlers: {
    onOpen: (peer) => void opened.push(peer),
    onRefused: (code) => void refused.push(code),
    onMessage: async (peer, text) => (text === 'silent' ? undefined : `${peer.did.slice(-6)}:${text}`),
  },
});
t.teardown(async () => {
  await server.close();
  store.close();
});
const base = server.url.replace(/\/talos\/v1\/tunnel$/, '');

function rawSocket(): Promise<{ ws: WebSocket; closed: Promise<number> }> {
  const ws = new WebSocket(server.url);
  const closed = new Promise<number>((r) => ws.on('close', (code) => r(code)));
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', reject);
  });
}

t.test('an agent fetches the offer, hands shakes and exchanges messages', async (t) => {
  const agent = generateIdentity(crypto);
  const client = await connectTunnel({ url: base, identity: agent, crypto, expectDid: gateway.did });
  t.equal(client.gatewayDid, gateway.did);
  const got: string[] = [];
  const two = new Promise<void>((resolve) => {
    client.onmessage = (m) => {
      got.push(m);
      if (got.length === 2) resolve();
    };
  });
  // Two messages before any reply: both travel as prekey frames; the second is opened on the session.
  client.send('one');
  client.send('silent');
  client.send('two');
  await two;
  t.same(got.sort(), [`${agent.did.slice(-6)}:one`, `${agent.did.slice(-6)}:two`]);
  t.equal(opened.at(-1)!.did, agent.did, 'the peer is the DID the session authenticated');
  await client.close();
});

t.test('each offer hands out a different one-time prekey; a wrong expected gateway is refused', async (t) => {
  const a = await fetchOffer(tunnelUrls(base).offer);
  const b = await fetchOffer(tunnelUrls(base).offer);
  t.not(a.opk!.id, b.opk!.id);
  t.ok(a.bundle.pqspk, 'the bundle offers PQXDH');
  await t.rejects(connectTunnel({ url: base, identity: generateIdentity(crypto), crypto, expectDid: generateIdentity(crypto).did }), { code: 'wrong_gateway' });
  t.throws(() => tunnelUrls('http://x'), { code: 'bad_gateway_url' });
});

t.test('a replayed first frame is refused and closes the connection; the session goes on', async (t) => {
  const agent = generateIdentity(crypto);
  const offer = await fetchOffer(tunnelUrls(base).offer);
  const channel = new SessionChannel(crypto, initiateSession(crypto, agent, offer, Date.now()));
  const first = channel.seal('hello');
  const one = await rawSocket();
  const reply = new Promise<string>((r) => one.ws.once('message', (d) => r(d.toString())));
  one.ws.send(first);
  t.match(await reply, /"type":"msg"/, 'the first connection is answered');
  // Its sid names a live session: it is a resume attempt, and it does not decrypt again.
  const two = await rawSocket();
  two.ws.send(first);
  t.equal(await two.closed, CLOSE_BAD_FRAME);
  t.ok(refused.includes('duplicate_message') || refused.includes('replay'), refused.join());
  const again = new Promise<string>((r) => one.ws.once('message', (d) => r(d.toString())));
  one.ws.send(channel.seal('still here'));
  t.match(await again, /"type":"msg"/, 'the session still answers on its connection');
  one.ws.close();
});

t.test('garbage, binary and forged frames close the connection', async (t) => {
  const g = await rawSocket();
  g.ws.send('{"v":1,"type":"msg"}');
  t.equal(await g.closed, CLOSE_BAD_FRAME);
  const b = await rawSocket();
  b.ws.send(Buffer.from([1, 2, 3]));
  t.equal(await b.closed, CLOSE_BAD_FRAME);

  const agent = generateIdentity(crypto);
  const offer = await fetchOffer(tunnelUrls(base).offer);
  const channel = new SessionChannel(crypto, initiateSession(crypto, agent, offer, Date.now()));
  const f = await rawSocket();
  const answered = new Promise<void>((r) => f.ws.once('message', () => r()));
  f.ws.send(channel.seal('hi'));
  await answered;
  const frame = JSON.parse(channel.seal('tampered')) as { ct: string };
  frame.ct = (frame.ct[0] === 'A' ? 'B' : 'A') + frame.ct.slice(1);
  f.ws.send(JSON.stringify(frame));
  t.equal(await f.closed, CLOSE_BAD_FRAME);
});

t.test('other paths are not served', async (t) => {
  const res = await fetch(tunnelUrls(base).offer.replace(OFFER_PATH, "/nope"));
  t.equal(res.status, 404);
  await res.text();
});

t.test('TalosClientTransport exposes its sessionId only after the first send', async (t) => {
  const tr = new TalosClientTransport({ gateway: base, identity: generateIdentity(crypto), crypto, token: 'x' });
  await tr.start();
  t.equal(tr.sessionId, undefined);
  await tr.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
  t.match(tr.sessionId, /^[A-Za-z0-9_-]{22}$/);
  let closed = 0;
  tr.onclose = () => void closed++;
  await tr.close();
  t.equal(closed, 1, 'close fires onclose once');
  await t.rejects(tr.send({ jsonrpc: '2.0', method: 'x' }), { code: 'tunnel_closed' });
});

t.test('offers stop carrying one-time prekeys once too many are outstanding', async (t) => {
  const { MAX_OUTSTANDING_ONE_TIME_PREKEYS, ONE_TIME_PREKEY_BATCH } = await import('./responder.ts');
  const own = new SqliteSessionStore({ path: ':memory:' });
  t.teardown(() => own.close());
  const r = new GatewayResponder(crypto, generateIdentity(crypto), own);
  let withOpk = 0;
  for (let i = 0; i < MAX_OUTSTANDING_ONE_TIME_PREKEYS + ONE_TIME_PREKEY_BATCH; i++) if ((await r.offer()).opk) withOpk++;
  t.equal(withOpk, MAX_OUTSTANDING_ONE_TIME_PREKEYS);
  const bare = await r.offer();
  t.equal(bare.opk, undefined);
  // A session can still be made from the bare bundle.
  const agent = generateIdentity(crypto);
  const ch = new SessionChannel(crypto, initiateSession(crypto, agent, bare, Date.now()));
  const { decodeEnvelope } = await import('../session/index.ts');
  const accepted = await r.accept(decodeEnvelope(ch.seal('hi')));
  t.equal(accepted.text, 'hi');
});
