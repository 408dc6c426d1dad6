import t from 'tap';
import { realisticTokens } from '../bench/realistic-token.ts';
import { CapabilityChecker } from '../runtime/capability/checker.ts';
import { MemoryRevocationSource, mintRevocation } from '../runtime/capability/revocation.ts';
import { encodeToken } from '../runtime/capability/token.ts';
import { capabilityVectors } from '../runtime/capability/vectors.ts';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { DOMAINS, signObject } from '../runtime/identity/signing.ts';
import { didFromPublicKey } from '../runtime/identity/did.ts';
import { CryptoPool } from './pool.ts';
import { MAX_WARM_BATCH, PooledAuthorizer } from './pooled-authorizer.ts';

const crypto = createCryptoProvider({ name: 'node' });
const vectors = capabilityVectors();
// Worker start-up (tsx in every thread) is slow: one pool for the tests that only run tasks on it.
const pool = new CryptoPool({ threads: 2, provider: 'node' });
t.teardown(() => pool.close());

/** Signed objects to keep a worker busy: `verify-objects` over them takes a while. */
function signedObjects(n: number) {
  const key = crypto.ed25519KeyPair();
  const iss = didFromPublicKey(key.publicKey);
  return Array.from({ length: n }, (_, i) => ({
    publicKey: key.publicKey,
    domain: DOMAINS.revocation,
    obj: signObject(crypto, key.secretKey, DOMAINS.revocation, { v: 1, iss, token_id: `t${i}`, ts: i }),
  }));
}

function vectorChecker(revocations: string[] = []) {
  const source = new MemoryRevocationSource();
  for (const name of revocations) source.inject(vectors.revocations[name]!.revocation);
  return new CapabilityChecker({ crypto, audience: vectors.config.audience, trustedRoots: vectors.config.trusted_roots, revocations: source });
}

t.test('warm then check gives every vector the plain checker verdict, verified on a worker', async (t) => {
  const before = { ...pool.stats };
  for (const c of vectors.cases) {
    const plain = vectorChecker(c.revocations);
    const checker = vectorChecker(c.revocations);
    const authorizer = new PooledAuthorizer(checker, pool, { loneInline: false });
    const warming = authorizer.warm(c.compact);
    t.ok(warming instanceof Promise, `${c.name}: an uncached token is warmed`);
    await warming;
    t.same(authorizer.stats, { pooled: 1, lone: 0, coalesced: 0, fellBack: 0 }, `${c.name}: the verdict came from the pool`);
    t.equal(authorizer.warm(c.compact), undefined, `${c.name}: then cached (refusals too): nothing to wait for`);
    t.same(authorizer.check(c.compact, c.request, c.session_did, c.now_ms), plain.check(c.compact, c.request, c.session_did, c.now_ms), c.name);
    t.match(checker.stats, { cacheMisses: 1, cacheHits: 1 }, `${c.name}: the check was a cache hit`);
    plain.close();
    checker.close();
  }
  t.equal(pool.stats.poolBatches - before.poolBatches, vectors.cases.length, 'every verification ran on a worker thread');
  t.equal(pool.stats.inlineBatches, before.inlineBatches, 'none inline');
});

t.test('realistic tokens: concurrent warms of one token share one task; a burst shares one batch', async (t) => {
  const kit = realisticTokens(crypto);
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer] });
  t.teardown(() => checker.close());
  const authorizer = new PooledAuthorizer(checker, pool, { loneInline: false });
  const compact = encodeToken(kit.leaf(kit.root(1), kit.T0 + 3600));
  const before = { ...pool.stats };
  const warms = Array.from({ length: 10 }, () => authorizer.warm(compact));
  t.equal(authorizer.inFlight, 1);
  t.ok(warms.every((w) => w === warms[0]), 'every caller waits on the same promise');
  await Promise.all(warms);
  t.same(authorizer.stats, { pooled: 1, lone: 0, coalesced: 9, fellBack: 0 });
  t.equal(pool.stats.poolBatches - before.poolBatches, 1, 'the pool ran one task');
  t.equal(authorizer.inFlight, 0);
  t.equal(checker.stats.cacheMisses, 1, 'verified once');
  const req = { method: 'tools/call', tool: 'read_text_file', args: { path: 'workspace/project-0/src/main.ts' } };
  t.match(authorizer.check(compact, req, kit.subject, Date.now()), { ok: true, grant: { tool: 'read_text_file' } });

  const burst = Array.from({ length: 6 }, (_, i) => encodeToken(kit.leaf(kit.root(10 + i), kit.T0 + 3600)));
  const mid = { ...pool.stats };
  await Promise.all(burst.map((c) => authorizer.warm(c)));
  t.equal(pool.stats.poolBatches - mid.poolBatches, 1, 'warms of one event-loop turn go to the pool as one batch');
  for (const c of burst) t.equal(authorizer.check(c, req, kit.subject, Date.now()).ok, true);
  t.equal(checker.stats.cacheMisses, 7, 'each burst token verified once, by the pool');

  const large = Array.from({ length: MAX_WARM_BATCH + 1 }, (_, i) => encodeToken(kit.leaf(kit.root(100 + i), kit.T0 + 3600)));
  const atLarge = { ...pool.stats };
  await Promise.all(large.map((c) => authorizer.warm(c)));
  t.equal(pool.stats.poolBatches - atLarge.poolBatches, 2, 'a burst past MAX_WARM_BATCH is split into batches');
  t.ok(large.every((c) => checker.isCached(c)));
});

t.test('a token warmed alone at an idle pool is left to the check (inline); a busy pool takes it', async (t) => {
  const kit = realisticTokens(crypto);
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer] });
  t.teardown(() => checker.close());
  const authorizer = new PooledAuthorizer(checker, pool);
  const req = { method: 'tools/call', tool: 'read_text_file', args: { path: 'workspace/project-0/src/a' } };
  const before = { ...pool.stats };
  const lone = encodeToken(kit.leaf(kit.root(20), kit.T0 + 3600));
  await authorizer.warm(lone);
  t.same(authorizer.stats, { pooled: 0, lone: 1, coalesced: 0, fellBack: 0 });
  t.same(pool.stats, before, 'the pool was not used');
  t.equal(checker.isCached(lone), false);
  t.equal(authorizer.check(lone, req, kit.subject, Date.now()).ok, true, 'verified inline by the check');

  // Two turns: the first batch is still on the pool (queued behind work that keeps both
  // threads busy) when the second, of one token, is gathered.
  const objects = signedObjects(300);
  const busy = [pool.runOnPool('verify-objects', objects, null), pool.runOnPool('verify-objects', objects, null)];
  const first = [21, 22].map((i) => encodeToken(kit.leaf(kit.root(i), kit.T0 + 3600)));
  const second = encodeToken(kit.leaf(kit.root(23), kit.T0 + 3600));
  const warming = first.map((c) => authorizer.warm(c));
  await new Promise((resolve) => setImmediate(resolve)); // the first batch is dispatched
  await Promise.all([...warming, authorizer.warm(second)]);
  t.same(authorizer.stats, { pooled: 3, lone: 1, coalesced: 0, fellBack: 0 }, 'a lone token joins the pool while it is busy');
  for (const c of [...first, second]) t.equal(checker.isCached(c), true);
  await Promise.all(busy);
});

t.test('a forged token verified by the pool is refused, and the refusal is cached', async (t) => {
  const kit = realisticTokens(crypto);
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer] });
  t.teardown(() => checker.close());
  const authorizer = new PooledAuthorizer(checker, pool, { loneInline: false });
  const leaf = kit.leaf(kit.root(2), kit.T0 + 3600);
  const widened = { ...leaf, grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: '**' } } }] };
  // Re-signed by a key that is not the issuer's: well-formed, every rule holds but the signature.
  const { sig: _sig, ...unsigned } = widened;
  const stranger = crypto.ed25519KeyPair();
  const resigned = signObject(crypto, stranger.secretKey, DOMAINS.capability, unsigned);
  const req = { method: 'tools/call', tool: 'read_text_file', args: { path: 'etc/passwd' } };
  for (const forged of [widened, resigned]) {
    const compact = encodeToken(forged as typeof leaf);
    await authorizer.warm(compact);
    t.equal(checker.isCached(compact), true, 'the refusal is cached like an inline one');
    t.match(authorizer.check(compact, req, kit.subject, Date.now()), { ok: false, code: 'bad_signature' });
  }
  t.equal(authorizer.stats.pooled, 2);
  t.not(didFromPublicKey(stranger.publicKey), leaf.iss);
});

t.test('revocation after warm refuses; eviction just means the next warm verifies again', async (t) => {
  const source = new MemoryRevocationSource();
  const kit = realisticTokens(crypto);
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer], revocations: source, cacheSize: 2 });
  t.teardown(() => checker.close());
  const authorizer = new PooledAuthorizer(checker, pool, { loneInline: false });
  const root = kit.root(3);
  const compact = encodeToken(kit.leaf(root, kit.T0 + 3600));
  const req = { method: 'tools/call', tool: 'list_directory', args: { path: 'workspace/project-2/src' } };
  await authorizer.warm(compact);
  t.equal(authorizer.check(compact, req, kit.subject, Date.now()).ok, true);
  await source.publish(mintRevocation(crypto, kit.seed(1), root.id, Date.now()));
  t.equal(authorizer.warm(compact), undefined, 'still cached');
  t.match(authorizer.check(compact, req, kit.subject, Date.now()), { ok: false, code: 'revoked' }, 'the revoked parent takes the warmed child down');

  const others = [4, 5].map((i) => encodeToken(kit.leaf(kit.root(i), kit.T0 + 3600)));
  for (const c of others) await authorizer.warm(c);
  t.equal(checker.isCached(compact), false, 'evicted by two newer tokens (cache of 2)');
  await authorizer.warm(compact);
  t.match(authorizer.check(compact, req, kit.subject, Date.now()), { ok: false, code: 'revoked' }, 're-verified, still revoked');
});

t.test('when the pool is overloaded (or closed) the warm ends and the check verifies inline', async (t) => {
  const small = new CryptoPool({ threads: 1, maxQueue: 1, chunkItems: 400, provider: 'node' });
  const kit = realisticTokens(crypto);
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer] });
  t.teardown(() => checker.close());
  const authorizer = new PooledAuthorizer(checker, small);
  const objects = signedObjects(400);
  // One batch running, one queued: the pool is full while they last.
  const occupying = [small.runOnPool('verify-objects', objects, null), small.runOnPool('verify-objects', objects, null)];
  const burst = [6, 8].map((i) => encodeToken(kit.leaf(kit.root(i), kit.T0 + 3600)));
  await Promise.all(burst.map((c) => authorizer.warm(c)));
  t.same(authorizer.stats, { pooled: 0, lone: 0, coalesced: 0, fellBack: 2 }, 'pool_overloaded: nothing admitted');
  const req = { method: 'tools/call', tool: 'read_text_file', args: { path: 'workspace/project-0/src/a' } };
  for (const c of burst) {
    t.equal(checker.isCached(c), false);
    t.equal(authorizer.check(c, req, kit.subject, Date.now()).ok, true, 'the request is served, verified inline');
  }
  t.same(checker.stats, { cacheHits: 0, cacheMisses: 2, revocationsApplied: 0, revocationsIgnored: 0 });
  await Promise.all(occupying);

  await small.close();
  const later = [7, 9].map((i) => encodeToken(kit.leaf(kit.root(i), kit.T0 + 3600)));
  await Promise.all(later.map((c) => authorizer.warm(c)));
  t.equal(authorizer.stats.fellBack, 4, 'pool_closed: same fallback');
  for (const c of later) t.equal(authorizer.check(c, req, kit.subject, Date.now()).ok, true);
});

