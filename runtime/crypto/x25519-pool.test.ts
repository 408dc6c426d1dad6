import t from 'tap';
import { createNobleProvider } from './noble.ts';
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

t.test('pooled pairs are real, distinct X25519 pairs with a working KeyObject', async (t) => {
  const seen = new Set<string>();
  for (let i = 0; i < X25519_POOL_SIZE + 4; i++) {
    const pair = await pooledPair();
    t.equal(pair.secretKey.length, 32);
    t.same(pair.publicKey, noble.x25519PublicKey(pair.secretKey), 'public key belongs to the secret');
    t.equal(pair.key.type, 'private');
    t.equal(pair.key.asymmetricKeyType, 'x25519');
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
