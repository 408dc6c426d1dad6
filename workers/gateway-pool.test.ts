import t from 'tap';
import { realisticTokens } from '../bench/realistic-token.ts';
import { CapabilityChecker } from '../runtime/capability/checker.ts';
import { encodeToken } from '../runtime/capability/token.ts';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { generateIdentity } from '../runtime/identity/identity.ts';
import type { PeerPrekeys } from '../runtime/session/bundle.ts';
import { initiateHandshake, respondHandshake, type ResponderPrekeys } from '../runtime/session/handshake.ts';
import { createHasher } from '../runtime/audit/merkle.ts';
import { utf8 } from '../runtime/encoding/bytes.ts';
import { GatewayCryptoPool } from './gateway-pool.ts';
import { PooledAuthorizer } from './pooled-authorizer.ts';

const crypto = createCryptoProvider({ name: 'node' });
const req = { method: 'tools/call', tool: 'read_text_file', args: { path: 'workspace/project-0/src/main.ts' } };

t.test('0 threads: the checker alone and inline handshakes, no pool ever', async (t) => {
  const none = new GatewayCryptoPool(0, crypto);
  const kit = realisticTokens(crypto);
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer] });
  t.teardown(() => checker.close());
  t.equal(none.authorizer(checker), checker);
  t.notOk(none.authorizer(checker) instanceof PooledAuthorizer);
});

t.test('token chains: the pool starts only when misses arrive together; once closed, checks verify inline', async (t) => {
  const kit = realisticTokens(crypto);
  const gp = new GatewayCryptoPool(1, crypto);
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer] });
  t.teardown(() => checker.close());
  const authorizer = gp.authorizer(checker);
  const lone = encodeToken(kit.leaf(kit.root(1), kit.T0 + 3600));
  await authorizer.warm?.(lone);
  t.equal(gp.started, undefined, 'a lone miss is verified inline: no thread started');
  t.equal(authorizer.check(lone, req, kit.subject, Date.now()).ok, true);

  const together = Array.from({ length: 4 }, (_, i) => encodeToken(kit.leaf(kit.root(2 + i), kit.T0 + 3600)));
  await Promise.all(together.map((c) => authorizer.warm?.(c)));
  t.ok(gp.started, 'misses arriving together started the pool');
  t.equal(gp.started!.stats.poolBatches, 1, 'and were verified there in one batch');
  t.ok(together.every((c) => checker.isCached(c)));

  await gp.close();
  const after = Array.from({ length: 3 }, (_, i) => encodeToken(kit.leaf(kit.root(20 + i), kit.T0 + 3600)));
  await Promise.all(after.map((c) => authorizer.warm?.(c)));
  for (const c of after) t.equal(authorizer.check(c, req, kit.subject, Date.now()).ok, true, 'closed pool: verified inline, still allowed');
});

t.test('handshakes: a lone one inline without starting threads, several at once on the pool, same results', async (t) => {
  const alice = generateIdentity(crypto);
  const bob = generateIdentity(crypto);
  const spk = crypto.x25519KeyPair();
  const kem = crypto.mlkemKeyPair();
  const first = () => {
    const peer: PeerPrekeys = { did: bob.did, signingKey: bob.sig.publicKey, ikDh: bob.dh.publicKey, spk: { id: 1, pub: spk.publicKey }, pq: { id: 3, pub: kem.publicKey } };
    const prekeys: ResponderPrekeys = { spk, pqSeed: kem.seed };
    return { sent: initiateHandshake(crypto, alice, peer), prekeys };
  };
  const gp = new GatewayCryptoPool(1, crypto);
  t.teardown(() => gp.close());
  const one = first();
  const lone = await gp.keyAgreement(bob, alice.did, alice.sig.publicKey, one.sent.fields, one.prekeys);
  t.same([lone.sk, lone.sid], [one.sent.sk, one.sent.sid], 'the responder derived what the initiator did');
  t.equal(gp.started, undefined, 'lone: inline, no thread started');

  const many = [first(), first(), first()];
  const got = await Promise.all(many.map((m) => gp.keyAgreement(bob, alice.did, alice.sig.publicKey, m.sent.fields, m.prekeys)));
  t.ok(gp.started, 'handshakes arriving together started the pool');
  t.equal(gp.started!.stats.poolBatches, 1, 'and ran there as one batch');
  many.forEach((m, i) => t.same(got[i], respondHandshake(crypto, bob, alice.did, alice.sig.publicKey, m.sent.fields, m.prekeys), `handshake ${i}: same as inline`));
  // alice's X25519 key presented under mallory's DID: its certificate does not verify.
  const mallory = generateIdentity(crypto);
  await t.rejects(gp.keyAgreement(bob, mallory.did, mallory.sig.publicKey, many[0]!.sent.fields, many[0]!.prekeys), { code: 'bad_identity' }, 'refusals are the inline ones');
});

t.test('audit batches: small ones are hashed by the store, large ones on the pool with the same hashes', async (t) => {
  const gp = new GatewayCryptoPool(1, crypto);
  t.teardown(() => gp.close());
  const hasher = createHasher((d) => crypto.sha256(d));
  const small = Array.from({ length: 10 }, (_, i) => utf8(`leaf ${i}`));
  t.equal(gp.hashLeaves(small), undefined, 'a small batch: nothing to wait for, no thread started');
  t.equal(gp.started, undefined);
  const large = Array.from({ length: 300 }, (_, i) => utf8(`leaf ${i}`));
  const hashes = await gp.hashLeaves(large);
  t.same(hashes, large.map((l) => hasher.hashLeaf(l)), 'RFC 9162 leaf hashes, in order');
  t.equal(gp.started!.stats.poolBatches, 1, 'computed on the threads');
  await gp.close();
  t.equal(gp.hashLeaves(large), undefined, 'closed: the store hashes');
  t.equal(new GatewayCryptoPool(0, crypto).hashLeaves(large), undefined, '0 threads: the store hashes');
});
