import t from 'tap';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import { createNobleProvider } from './noble.ts';
import { nativeX25519 } from './native-x25519.ts';
import { createNodeProvider } from './node.ts';
import { seededRandom } from './seeded-random.ts';
import { takePooledX25519Pair, X25519_POOL_SIZE } from './x25519-pool.ts';

const noble = createNobleProvider();

async function pooledPair() {
  for (let i = 0; i < 500; i++) {
    const pair = takePooledX25519Pair();
    if (pair !== undefined) return pair;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error('the pool never delivered a pair');
}

t.test('pooled pairs are real, distinct X25519 pairs, with a KeyObject only for node:crypto\'s path', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < X25519_POOL_SIZE + 4; i++) {
    const pair = await pooledPair();
    t.equal(pair.secretKey.length, 32);
    t.same(pair.publicKey, noble.x25519PublicKey(pair.secretKey), 'public key belongs to the secret');
    if (nativeX25519 !== undefined) t.equal(pair.key, undefined, 'made on the addon: no KeyObject');
    else t.match(pair.key, { type: 'private', asymmetricKeyType: 'x25519' });
    seen.add(Buffer.from(pair.secretKey).toString('hex'));
  }
  t.equal(seen.size, X25519_POOL_SIZE + 4, 'no secret handed out twice');
});

t.test('the node provider hands out pooled pairs that agree with noble', async (t) => {
  const node = createNodeProvider();
  await pooledPair(); // the pool is running
  await new Promise((resolve) => setTimeout(resolve, 100));
  const peer = noble.x25519KeyPair();
  for (let i = 0; i < 8; i++) {
    const pair = node.x25519KeyPair();
    t.same(pair.publicKey, noble.x25519PublicKey(pair.secretKey));
    t.same(node.x25519(pair.secretKey, peer.publicKey), noble.x25519(peer.secretKey, pair.publicKey), 'same shared secret');
  }
});

t.test('a provider with an injected source never uses the pool: same draws as noble', async (t) => {
  const node = createNodeProvider({ random: seededRandom('pool-test') });
  const reference = createNobleProvider({ random: seededRandom('pool-test') });
  for (let i = 0; i < 4; i++) t.same(node.x25519KeyPair(), reference.x25519KeyPair());
});

// Runs the pool worker's module in a thread of its own, next to a probe of that thread's Buffer
// pool: the probe marks the pool's current slab, the worker makes keys, then the probe searches
// the marked and the current slab for the secrets (the worker's pool is not visible from here).
const POOL_PROBE = `
const { workerData } = require('node:worker_threads');
const probe = workerData.probe;
const slab = () => Buffer.allocUnsafe(1).buffer; // a small pooled allocation: the current slab
const inSlabs = (slabs, secret) => slabs.some((s) => Buffer.from(s).indexOf(secret) !== -1);
let marked = [];
import(workerData.url).then(() => {
  probe.on('message', (message) => {
    if (message === 'mark') {
      marked = [slab()];
      probe.postMessage('marked');
      return;
    }
    const slabs = [...marked, slab()];
    const found = message.filter((secret) => inSlabs(slabs, secret)).length;
    Buffer.from(message[0]); // control: a pooled copy the search must find
    probe.postMessage({ found, control: inSlabs([slab()], message[0]) });
  });
  probe.postMessage('ready');
});
`;

function nextMessage<T>(port: MessagePort): Promise<T> {
  return new Promise((resolve) => port.once('message', resolve));
}

for (const native of [false, true]) {
  const path = native ? 'addon' : 'node:crypto';
  t.test(`the pool worker leaves no copy of a secret in its thread's Buffer pool (${path})`, { skip: native && !nativeX25519 && 'addon off' }, async (t) => {
    const keys = new MessageChannel();
    const probe = new MessageChannel();
    const url = new URL('./x25519-pool-worker.mjs', import.meta.url).href;
    const worker = new Worker(POOL_PROBE, {
      eval: true,
      workerData: { port: keys.port2, probe: probe.port2, url, native },
      transferList: [keys.port2, probe.port2],
    });
    t.teardown(async () => {
      keys.port1.close();
      probe.port1.close();
      await worker.terminate();
    });
    t.equal(await nextMessage(probe.port1), 'ready');
    probe.port1.postMessage('mark');
    t.equal(await nextMessage(probe.port1), 'marked');
    keys.port1.postMessage(8);
    const pairs = await nextMessage<{ d: Uint8Array; x: Uint8Array; key?: unknown }[]>(keys.port1);
    t.equal(pairs.length, 8);
    t.equal(pairs.every((p) => (p.key === undefined) === native), true, native ? 'pairs made on the addon' : 'pairs made through node:crypto');
    t.same(pairs.map((p) => p.x), pairs.map((p) => noble.x25519PublicKey(p.d)), 'each public key belongs to its secret');
    probe.port1.postMessage(pairs.map((p) => p.d));
    const verdict = await nextMessage<{ found: number; control: boolean }>(probe.port1);
    t.ok(verdict.control, 'the probe finds a pooled copy');
    t.equal(verdict.found, 0, 'no secret left in the pool');
  });
}
