import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { createCryptoProvider } from '../crypto/index.ts';
import { generateIdentity } from '../identity/index.ts';
import { decodeEnvelope, initiateSession } from '../session/index.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { SessionChannel } from './channel.ts';
import { connectTunnelWithActor } from './actor-client.ts';
import { connectTunnel, fetchOffer, tunnelUrls, type TunnelClient } from './client.ts';
import { GatewayResponder } from './responder.ts';
import { CLOSE_BAD_FRAME, CLOSE_UNKNOWN_SESSION, startTunnelServer, type TunnelServer } from './server.ts';

// Sessions outlive connections and gateway restarts (SPEC 9.2.1): a restarted tunnel server over
// the same SQLite store resumes a session from its next frame; frames from before the restart,
// replayed, are refused; a sid nobody holds is refused with its own close code.
const crypto = createCryptoProvider();
const gateway = generateIdentity(crypto);
const dir = mkdtempSync(join(tmpdir(), 'talos-resume-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

interface Gw {
  server: TunnelServer;
  store: SqliteSessionStore;
  events: string[];
  refused: string[];
  stop(): Promise<void>;
}

async function startGw(path: string, port = 0): Promise<Gw> {
  const store = new SqliteSessionStore({ path });
  const events: string[] = [];
  const refused: string[] = [];
  const server = await startTunnelServer({
    host: '127.0.0.1',
    port,
    responder: new GatewayResponder(crypto, gateway, store, { lastIds: store.lastPrekeyIds() }),
    sessions: store,
    handlers: {
      onOpen: (p) => void events.push(`open ${p.sid}`),
      onResume: (p) => void events.push(`resume ${p.sid}`),
      onClose: (p, reason) => void events.push(`${reason} ${p.sid}`),
      onRefused: (code) => void refused.push(code),
      onMessage: async (_p, text) => `echo:${text}`,
    },
  });
  return {
    server,
    store,
    events,
    refused,
    stop: async () => {
      await server.close();
      await store.close();
    },
  };
}

/** One raw connection: send a frame, read the next reply's text (opened on `channel`) or the close code. */
async function exchange(url: string, frame: string, channel?: SessionChannel): Promise<{ text?: string; closed?: number; ws: WebSocket }> {
  const ws = new WebSocket(url);
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const out = await new Promise<{ text?: string; closed?: number }>((resolve) => {
    ws.once('message', (d) => resolve({ text: channel?.open(decodeEnvelope(d.toString()), Date.now()).text ?? d.toString() }));
    ws.once('close', (code) => resolve({ closed: code }));
    ws.send(frame);
  });
  return { ...out, ws };
}

t.test('a restarted gateway resumes the session from its next frame; replayed frames are refused', async (t) => {
  const path = join(dir, 'a.sqlite');
  let gw = await startGw(path);
  t.teardown(() => gw.stop());
  const url = gw.server.url;
  const agent = generateIdentity(crypto);
  const offer = await fetchOffer(tunnelUrls(url).offer);
  const channel = new SessionChannel(crypto, initiateSession(crypto, agent, offer, Date.now()));
  const f1 = channel.seal('one');
  const first = await exchange(url, f1, channel);
  t.equal(first.text, 'echo:one');
  const f2 = channel.seal('two');
  const second = await new Promise<string>((resolve) => {
    first.ws.once('message', (d) => resolve(channel.open(decodeEnvelope(d.toString()), Date.now()).text!));
    first.ws.send(f2);
  });
  t.equal(second, 'echo:two');
  first.ws.terminate();

  await gw.stop();
  gw = await startGw(path, gw.server.port);
  t.equal(gw.server.url, url, 'the same URL');

  const replayed = await exchange(url, f2);
  t.equal(replayed.closed, CLOSE_BAD_FRAME, 'a frame from before the restart does not open again');
  const replayedFirst = await exchange(url, f1);
  t.equal(replayedFirst.closed, CLOSE_BAD_FRAME, 'nor does the first (prekey) frame');
  t.same(gw.events, [], 'neither resumed nor opened anything');

  const f3 = channel.seal('three');
  const resumed = await exchange(url, f3, channel);
  t.equal(resumed.text, 'echo:three', 'the next frame resumes the session: same sid, no handshake');
  t.same(gw.events, [`resume ${channel.sid}`]);
  resumed.ws.terminate();
  const again = await exchange(url, f3);
  t.equal(again.closed, CLOSE_BAD_FRAME, 'the resuming frame itself cannot be replayed');

  // A frame naming a session nobody holds (not a handshake): unknown_session.
  const stranger = JSON.parse(channel.seal('who')) as { sid: string };
  stranger.sid = Buffer.alloc(16, 7).toString('base64url');
  const unknown = await exchange(url, JSON.stringify(stranger));
  t.equal(unknown.closed, CLOSE_UNKNOWN_SESSION);
  t.ok(gw.refused.includes('unknown_session'));
});

for (const [kind, connect] of [
  ['channel', connectTunnel],
  ['session actor', connectTunnelWithActor],
] as const) t.test(`the agent client (${kind}) reconnects by itself and goes on with the same session`, async (t) => {
  const path = join(dir, `b-${kind}.sqlite`);
  let gw = await startGw(path);
  t.teardown(() => gw.stop());
  const client: TunnelClient = await connect({ url: gw.server.url, identity: generateIdentity(crypto), crypto, expectDid: gateway.did });
  const replies: string[] = [];
  let next: (() => void) | undefined;
  client.onmessage = (m) => {
    replies.push(m);
    next?.();
  };
  const say = (text: string) => new Promise<void>((resolve) => {
    next = resolve;
    client.send(text);
  });
  await say('before');
  await gw.stop();
  gw = await startGw(path, gw.server.port);
  // (A frame sent before the agent has noticed the drop is lost with the old socket.)
  for (let i = 0; i < 200 && client.connected; i++) await new Promise((r) => setTimeout(r, 10));
  t.notOk(client.connected, 'the agent noticed the drop');
  await say('after');
  t.same(replies, ['echo:before', 'echo:after']);
  t.same(gw.events, [`resume ${client.sid}`], 'resumed, not opened again');
  await client.close();
  for (let i = 0; i < 100 && gw.events.length < 2; i++) await new Promise((r) => setTimeout(r, 20));
  t.same(gw.events, [`resume ${client.sid}`, `closed ${client.sid}`], 'its close frame ends the session');
  t.same(gw.store.db.prepare('SELECT count(*) AS n FROM session').get(), { n: 0 }, 'a closed session is no longer stored');
});

t.test('with an in-memory store a restarted gateway has nothing to resume', async (t) => {
  let gw = await startGw(':memory:');
  t.teardown(() => gw.stop());
  const client = await connectTunnel({ url: gw.server.url, identity: generateIdentity(crypto), crypto });
  const first = new Promise<string>((r) => (client.onmessage = r));
  client.send('hi');
  t.equal(await first, 'echo:hi');
  const closed = new Promise<string>((r) => (client.onclose = r));
  await gw.stop();
  gw = await startGw(':memory:', gw.server.port);
  for (let i = 0; i < 200 && client.connected; i++) await new Promise((r) => setTimeout(r, 10));
  client.send('again');
  t.match(await closed, /^4404 unknown_session/, 'the client is told: the session is gone');
  t.throws(() => client.send('more'), { code: 'tunnel_closed' });
});

t.test('a gateway that stays down: the client gives up after its bounded retries', async (t) => {
  const gw = await startGw(join(dir, 'c.sqlite'));
  const client = await connectTunnel({ url: gw.server.url, identity: generateIdentity(crypto), crypto });
  const first = new Promise<string>((r) => (client.onmessage = r));
  client.send('hi');
  await first;
  await gw.stop();
  for (let i = 0; i < 200 && client.connected; i++) await new Promise((r) => setTimeout(r, 10));
  const closed = new Promise<string>((r) => (client.onclose = r));
  client.send('anyone?');
  t.equal(await closed, 'reconnect_failed');
  t.throws(() => client.send('more'), { code: 'tunnel_closed' });
});

t.test('a state the store cannot keep is never used: nothing is answered, the connection closes with 4500', async (t) => {
  const gw = await startGw(join(dir, 'd.sqlite'));
  t.teardown(() => gw.server.close());
  const agent = generateIdentity(crypto);
  const channel = new SessionChannel(crypto, initiateSession(crypto, agent, await fetchOffer(tunnelUrls(gw.server.url).offer), Date.now()));
  const first = await exchange(gw.server.url, channel.seal('one'), channel);
  t.equal(first.text, 'echo:one');
  await gw.store.close(); // every later commit fails
  const after = await new Promise<{ text?: string; closed?: number }>((resolve) => {
    first.ws.once('message', (d) => resolve({ text: d.toString() }));
    first.ws.once('close', (code) => resolve({ closed: code }));
    first.ws.send(channel.seal('two'));
  });
  t.same(after, { closed: 4500 }, 'the message was not processed and no reply left');
  t.ok(gw.refused.includes('store_failed'));
});
