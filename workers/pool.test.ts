import t from 'tap';
import { delegateToken, encodeToken, mintToken } from '../runtime/capability/token.ts';
import { providers } from '../runtime/crypto/index.ts';
import { utf8 } from '../runtime/encoding/bytes.ts';
import { didFromPublicKey } from '../runtime/identity/did.ts';
import { DOMAINS, signObject } from '../runtime/identity/signing.ts';
import { CryptoPool, PoolError } from './pool.ts';
import type { SignedItem } from './tasks.ts';

function signedItems(crypto: ReturnType<typeof providers>[number], n: number): SignedItem[] {
  const kp = crypto.ed25519KeyPair();
  return Array.from({ length: n }, (_, i) => ({
    publicKey: kp.publicKey,
    domain: DOMAINS.revocation,
    obj: signObject(crypto, kp.secretKey, DOMAINS.revocation, { v: 1, iss: didFromPublicKey(kp.publicKey), token_id: `t${i}`, ts: i }),
  }));
}

// Worker start-up (tsx in every thread) is the slow part of this file: one pool per provider,
// shared by the tests that only run tasks on it.
const pools = new Map(providers().map((c) => [c.name, new CryptoPool({ threads: 2, provider: c.name, chunkItems: 8 })]));
t.teardown(() => Promise.all([...pools.values()].map((p) => p.close())));

for (const crypto of providers()) {
  t.test(`${crypto.name}: batch verification on the pool agrees with inline, item by item`, async (t) => {
    const pool = pools.get(crypto.name)!;
    t.equal(pool.crypto.name, crypto.name);
    const items = signedItems(crypto, 50);
    // Tamper with a few: the verdicts must line up with the items.
    const bad = new Set([3, 17, 42]);
    for (const i of bad) items[i]!.obj = { ...items[i]!.obj, ts: 999 };
    const onPool = await pool.runOnPool('verify-objects', items, null);
    t.same(onPool, items.map((_, i) => !bad.has(i)));
    t.same(pool.runInline('verify-objects', items, null), onPool);
    t.same(await pool.run('verify-objects', items.slice(0, 1), null), [true], 'a single item runs inline');

    const data = Array.from({ length: 40 }, (_, i) => utf8(`leaf ${i}`));
    const hashes = await pool.runOnPool('sha256-batch', data, null);
    t.same(hashes.map((h) => Buffer.from(h).toString('hex')), data.map((d) => Buffer.from(crypto.sha256(d)).toString('hex')));
  });
}

t.test('uncached token-chain verification on the pool gives the checker verdicts', async (t) => {
  const [crypto] = providers();
  const pool = pools.get('node')!;
  const root = crypto!.ed25519KeyPair();
  const alice = crypto!.ed25519KeyPair();
  const bob = crypto!.ed25519KeyPair();
  const did = (k: { publicKey: Uint8Array }) => didFromPublicKey(k.publicKey);
  const gateway = did(crypto!.ed25519KeyPair());
  const parent = mintToken(crypto!, {
    issuerKey: root.secretKey,
    sub: did(alice),
    aud: gateway,
    nbf: 1000,
    exp: 2000,
    grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/**' } } }],
  });
  const child = delegateToken(crypto!, {
    issuerKey: alice.secretKey,
    parent,
    sub: did(bob),
    grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/src/**' } } }],
  });
  const forged = { ...child, sub: did(root) };
  const tokens = [parent, child, forged, child, parent, forged];
  const verdicts = await pool.runOnPool('verify-token-chains', tokens, { trustedRoots: [did(root)] });
  t.same(verdicts, [{ ok: true }, { ok: true }, { ok: false, code: 'bad_signature' }, { ok: true }, { ok: true }, { ok: false, code: 'bad_signature' }]);
  const compact = await pool.runOnPool('verify-token-chains', [encodeToken(child), 'not-a-token', encodeToken(parent)], { trustedRoots: [did(root)] });
  t.same(compact, [{ ok: true }, { ok: false, code: 'malformed' }, { ok: true }], 'the compact form, as it arrives in requests');
  const untrusted = await pool.runOnPool('verify-token-chains', [child, parent], { trustedRoots: [] });
  t.same(untrusted, [{ ok: false, code: 'untrusted_root' }, { ok: false, code: 'untrusted_root' }]);
});

t.test('the queue is bounded: a batch that does not fit is refused whole with pool_overloaded', async (t) => {
  const [crypto] = providers();
  const pool = new CryptoPool({ threads: 1, maxQueue: 2, chunkItems: 1, provider: 'node' });
  t.teardown(() => pool.close());
  const items = signedItems(crypto!, 200);
  const big = pool.runOnPool('verify-objects', items.slice(0, 3), null); // 1 running + 2 queued: full
  let refused: unknown;
  try {
    await pool.runOnPool('verify-objects', items.slice(3, 4), null);
  } catch (err) {
    refused = err;
  }
  t.ok(refused instanceof PoolError && refused.code === 'pool_overloaded', 'refused at once while full');
  t.same(await big, [true, true, true], 'the admitted batch completes');
  t.same(await pool.runOnPool('verify-objects', items.slice(4, 6), null), [true, true], 'accepted again once drained');
  let tooBig: unknown;
  try {
    await pool.runOnPool('verify-objects', items.slice(0, 10), null);
  } catch (err) {
    tooBig = err;
  }
  t.ok(tooBig instanceof PoolError && tooBig.code === 'pool_overloaded', 'a batch larger than the whole pool is refused');
  t.same(pool.depth(), { waiting: 0, active: 0, delayed: 0 });
});

t.test('a task that throws in a worker is a typed failure; a closed pool refuses', async (t) => {
  const pool = new CryptoPool({ threads: 1, provider: 'node' });
  const bad = [{ publicKey: new Uint8Array(32), domain: DOMAINS.revocation, obj: {} }];
  // A task name the workers do not know (a caller bypassing the types): the worker throws.
  await t.rejects(pool.runOnPool('no-such-task' as 'verify-objects', [...bad, ...bad], null), { code: 'pool_task_failed' });
  await pool.close();
  await t.rejects(pool.runOnPool('verify-objects', bad, null), { code: 'pool_closed' });
  t.throws(() => pool.runInline('verify-objects', bad, null), { code: 'pool_closed' });
});

t.test('submit gathers concurrent single requests: a lone one runs inline, a burst on the threads', async (t) => {
  const [crypto] = providers();
  const pool = pools.get('node')!;
  const items = signedItems(crypto!, 20);
  items[5]!.obj = { ...items[5]!.obj, ts: -1 };
  const before = { ...pool.stats };
  t.equal(await pool.submit('verify-objects', items[0]!, null), true);
  t.same(pool.stats, { inlineBatches: before.inlineBatches + 1, poolBatches: before.poolBatches }, 'lone request: inline');
  const verdicts = await Promise.all(items.map((item) => pool.submit('verify-objects', item, null)));
  t.same(verdicts, items.map((_, i) => i !== 5), 'each caller gets its own verdict');
  t.equal(pool.stats.poolBatches, before.poolBatches + 1, 'one burst, one pool batch');
});
