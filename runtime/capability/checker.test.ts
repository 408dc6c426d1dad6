import t from 'tap';
import { providers } from '../crypto/index.ts';
import { toB64u } from '../encoding/base64url.ts';
import { fromHex, utf8 } from '../encoding/bytes.ts';
import { didFromPublicKey } from '../identity/did.ts';
import { CapabilityChecker, fingerprint } from './checker.ts';
import { CapabilityError } from './errors.ts';
import type { AccessRequest, Grant } from './grant.ts';
import { MemoryRevocationSource, mintRevocation } from './revocation.ts';
import { CAPABILITY_META_KEY, decodeToken, delegateToken, encodeToken, MAX_CHAIN_DEPTH, mintToken, type Token } from './token.ts';

const T0 = 1_800_000_000;
const NOW = (T0 + 10) * 1000;
const seed = (n: number) => fromHex(n.toString(16).padStart(2, '0').repeat(32));
const read = (path: string) => ({ method: 'tools/call', tool: 'read_text_file', args: { path } });
const grants: Grant[] = [
  { method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/**' } } },
  { method: 'tools/call', tool: 'write_file', args: { path: { glob: 'repo/tmp/*' } } },
];

t.equal(CAPABILITY_META_KEY, 'talos/capability');

for (const crypto of providers()) {
  t.test(`checker with the ${crypto.name} provider`, async (t) => {
    const did = (n: number) => didFromPublicKey(crypto.ed25519PublicKey(seed(n)));
    const [ROOT, ALICE, BOB, GW, MALLORY] = [1, 2, 3, 4, 5];
    const mkChecker = (o: Partial<ConstructorParameters<typeof CapabilityChecker>[0]> = {}) =>
      new CapabilityChecker({ crypto, audience: did(GW), trustedRoots: [did(ROOT)], ...o });
    const root = mintToken(crypto, { issuerKey: seed(ROOT), sub: did(ALICE), aud: did(GW), grants, nbf: T0, exp: T0 + 3600 });
    const child = delegateToken(crypto, {
      parent: root,
      issuerKey: seed(ALICE),
      sub: did(BOB),
      grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/src/**' } } }],
    });

    t.test('compact form round-trips and is unique', async (t) => {
      const compact = encodeToken(child);
      t.same(decodeToken(compact), child);
      t.throws(() => decodeToken(compact + '='), { code: 'malformed' });
      const spaced = toB64u(utf8(JSON.stringify(child, null, 1)));
      t.throws(() => decodeToken(spaced), { code: 'malformed' }, 'non-JCS JSON is refused');
      t.equal(child.prf?.[0].id, root.id, 'prf holds the whole parent');
    });

    t.test('first check verifies, later checks hit the cache', async (t) => {
      const c = mkChecker();
      const compact = encodeToken(child);
      const first = c.check(compact, read('repo/src/a.ts'), did(BOB), NOW);
      t.same(first, { ok: true, tokenId: child.id, grant: child.grants[0] });
      t.same(c.stats, { cacheHits: 0, cacheMisses: 1, revocationsApplied: 0, revocationsIgnored: 0 });
      t.equal(c.check(compact, read('repo/src/b.ts'), did(BOB), NOW).ok, true);
      t.equal(c.stats.cacheHits, 1);
      t.match(c.check(compact, read('repo/other'), did(BOB), NOW), { ok: false, code: 'arg_violation', arg: 'path' });
      t.match(c.check(child, read('repo/src/c.ts'), did(BOB), NOW), { ok: true }, 'token objects work too');
      t.equal(c.stats.cacheHits, 3, 'an object finds the entry of its compact form');
    });

    t.test('the cache cannot be poisoned by a token that shares id and signature', async (t) => {
      const c = mkChecker();
      t.equal(c.check(encodeToken(child), read('repo/src/a'), did(BOB), NOW).ok, true);
      const evil: Token = { ...child, grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/**' } } }] };
      t.match(c.check(encodeToken(evil), read('repo/secret'), did(BOB), NOW), { ok: false, code: 'bad_signature' });
      t.match(c.check(encodeToken(evil), read('repo/secret'), did(BOB), NOW), { ok: false, code: 'bad_signature' }, 'refusals are cached too');
      t.equal(c.check(encodeToken(child), read('repo/src/a'), did(BOB), NOW).ok, true);
    });

    t.test('a fingerprint collision neither hits nor evicts a verified entry', async (t) => {
      const c = mkChecker();
      const good = encodeToken(child);
      t.equal(c.check(good, read('repo/src/a'), did(BOB), NOW).ok, true);
      // Change one character the fingerprint does not sample: same bucket, different token.
      const sampled = new Set<number>();
      const n = good.length;
      const step = Math.max(1, Math.floor(n / 16));
      for (let i = 0; i < n; i += step) sampled.add(i);
      for (let i = n > 256 ? n - 256 : 0; i < n; i += 16) sampled.add(i);
      let i = 40;
      while (sampled.has(i)) i++;
      const evil = good.slice(0, i) + (good[i] === 'A' ? 'B' : 'A') + good.slice(i + 1);
      t.equal(fingerprint(evil), fingerprint(good), 'the two strings share a bucket');
      for (let k = 0; k < 3; k++) t.equal(c.check(evil, read('repo/src/a'), did(BOB), NOW).ok, false, 'the look-alike is refused');
      const hits = c.stats.cacheHits;
      t.equal(c.check(good, read('repo/src/a'), did(BOB), NOW).ok, true);
      t.equal(c.stats.cacheHits, hits + 1, 'the verified entry was kept');
    });

    t.test('sub must be the session DID; checks run in the protocol order', async (t) => {
      const c = mkChecker();
      const compact = encodeToken(child);
      t.match(c.check(compact, read('repo/src/a'), did(ALICE), NOW), { code: 'wrong_subject' }, 'the bearer alone proves nothing');
      t.equal(c.check(compact, read('repo/src/a'), did(BOB).replace('did:talos:', 'did:key:'), NOW).ok, true, 'did:key names the same agent');
      t.match(c.check(compact, read('repo/src/a'), did(ALICE).replace('did:talos:', 'did:key:'), NOW), { code: 'wrong_subject' });
      const keyConfigured = mkChecker({ audience: did(GW).replace('did:talos:', 'did:key:'), trustedRoots: [did(ROOT).replace('did:talos:', 'did:key:')] });
      t.equal(keyConfigured.check(compact, read('repo/src/a'), did(BOB), NOW).ok, true, 'configuration may use did:key');
      // wrong subject AND expired AND no matching grant: wrong_subject is reported
      t.match(c.check(compact, { method: 'nope' }, did(ALICE), (T0 + 7200) * 1000), { code: 'wrong_subject' });
      t.match(c.check(compact, { method: 'nope' }, did(BOB), (T0 + 7200) * 1000), { code: 'expired' });
      const other = mkChecker({ audience: did(MALLORY) });
      t.match(other.check(compact, { method: 'nope' }, did(BOB), 0), { code: 'wrong_audience' });
      const distrusting = mkChecker({ trustedRoots: [did(MALLORY)] });
      t.match(distrusting.check(compact, read('repo/src/a'), did(ALICE), NOW), { code: 'untrusted_root' });
    });

    t.test('revocation invalidates cached results at once, for the whole subtree', async (t) => {
      const source = new MemoryRevocationSource();
      const gw1 = mkChecker({ revocations: source });
      const gw2 = mkChecker({ revocations: source });
      const compact = encodeToken(child);
      t.equal(gw1.check(compact, read('repo/src/a'), did(BOB), NOW).ok, true);
      t.equal(gw2.check(compact, read('repo/src/a'), did(BOB), NOW).ok, true);
      // Revocations that do not apply: a stranger, and the holder below the token.
      await source.publish(mintRevocation(crypto, seed(MALLORY), root.id, NOW));
      await source.publish(mintRevocation(crypto, seed(BOB), child.id, NOW));
      t.equal(gw1.check(compact, read('repo/src/a'), did(BOB), NOW).ok, true, 'a revocation binds only issuers at or above the token');
      // Forged: valid shape, wrong signature.
      source.inject({ ...mintRevocation(crypto, seed(ROOT), root.id, NOW), ts: NOW + 1 });
      source.inject({ nonsense: true });
      t.equal(gw1.stats.revocationsIgnored, 2, 'invalid revocations are ignored and counted');
      t.equal(gw1.check(compact, read('repo/src/a'), did(BOB), NOW).ok, true);
      // Alice (issuer of the child) revokes the ROOT's id? Not above the root: no effect on it.
      await source.publish(mintRevocation(crypto, seed(ALICE), root.id, NOW));
      t.equal(gw1.check(encodeToken(root), read('repo/a'), did(ALICE), NOW).ok, true);
      // The root issuer revokes the root: both tokens die on both gateways, cached or not.
      await source.publish(mintRevocation(crypto, seed(ROOT), root.id, NOW));
      for (const gw of [gw1, gw2]) {
        t.match(gw.check(compact, read('repo/src/a'), did(BOB), NOW), { code: 'revoked' });
        t.match(gw.check(encodeToken(root), read('repo/a'), did(ALICE), NOW), { code: 'revoked' });
      }
      const late = mkChecker({ revocations: source });
      t.match(late.check(compact, read('repo/src/a'), did(BOB), NOW), { code: 'revoked' }, 'a new gateway learns the whole set');
      t.equal(late.stats.revocationsApplied, 4);
      gw1.close();
      gw2.close();
      late.close();
    });

    t.test('verifyToken runs every request-independent check', async (t) => {
      const c = mkChecker();
      t.same(c.verifyToken(encodeToken(child), did(BOB), NOW), { ok: true, tokenId: child.id });
      t.match(c.verifyToken(encodeToken(child), did(ALICE), NOW), { ok: false, code: 'wrong_subject' });
      t.match(c.verifyToken(child, did(BOB), (T0 + 3600) * 1000), { ok: false, code: 'expired' });
      t.match(c.verifyToken(child, did(BOB), NaN), { ok: false, code: 'not_yet_valid' }, 'a broken clock refuses');
    });

    t.test('the cache is bounded', async (t) => {
      const c = mkChecker({ cacheSize: 2 });
      const tokens = [0, 1, 2].map((i) =>
        encodeToken(mintToken(crypto, { issuerKey: seed(ROOT), sub: did(ALICE), aud: did(GW), grants, nbf: T0, exp: T0 + 3600 + i })),
      );
      for (const tok of tokens) t.equal(c.check(tok, read('repo/a'), did(ALICE), NOW).ok, true);
      t.equal(c.cacheSize, 2);
      c.check(tokens[2]!, read('repo/a'), did(ALICE), NOW);
      t.equal(c.stats.cacheHits, 1, 'the most recent token is still cached');
      c.check(tokens[0]!, read('repo/a'), did(ALICE), NOW);
      t.equal(c.stats.cacheMisses, 4, 'the oldest was evicted');
    });

    t.test('a flood of refused tokens does not push a verified token out of the cache', async (t) => {
      const c = mkChecker({ cacheSize: 64 });
      const good = encodeToken(child);
      t.equal(c.check(good, read('repo/src/a'), did(BOB), NOW).ok, true);
      for (let i = 0; i < 1000; i++) t.equal(c.check(toB64u(utf8(`"${i}"`)), read('repo/src/a'), did(BOB), NOW).ok, false);
      t.ok(c.isCached(good), 'still cached');
      const misses = c.stats.cacheMisses;
      t.equal(c.check(good, read('repo/src/a'), did(BOB), NOW).ok, true);
      t.equal(c.stats.cacheMisses, misses, 'verified nothing again');
    });

    t.test('garbage never throws', async (t) => {
      const c = mkChecker();
      const good = encodeToken(child);
      t.match(c.check(good, read('repo/src/a'), undefined as unknown as string, NOW), { ok: false, code: 'wrong_subject' }, 'no session DID');
      t.match(c.check(good, null as unknown as AccessRequest, did(BOB), NOW), { ok: false, code: 'no_matching_grant' }, 'no request');
      for (const junk of ['', '!!!', toB64u(utf8('{"v":1}')), toB64u(utf8('[]')), 'A'.repeat(70_000)]) {
        t.match(c.check(junk, read('a'), did(BOB), NOW), { ok: false, code: 'malformed' });
      }
    });

    t.test('mint and delegate refuse what a checker would refuse', async (t) => {
      const base = { parent: root, sub: did(BOB) };
      t.throws(() => delegateToken(crypto, { ...base, issuerKey: seed(MALLORY), grants }), { code: 'delegation_issuer' });
      t.throws(() => delegateToken(crypto, { ...base, issuerKey: seed(ALICE), grants, exp: T0 + 3601 }), { code: 'delegation_exp' });
      t.throws(() => delegateToken(crypto, { ...base, issuerKey: seed(ALICE), grants, nbf: T0 - 1 }), { code: 'delegation_nbf' });
      t.throws(
        () => delegateToken(crypto, { ...base, issuerKey: seed(ALICE), grants: [{ method: 'tools/call', tool: 'read_text_file' }] }),
        { code: 'grant_escalation' },
      );
      const star = mintToken(crypto, {
        issuerKey: seed(ROOT), sub: did(ALICE), aud: did(GW), nbf: T0, exp: T0 + 60,
        grants: [{ method: 'tools/call', args: { path: { glob: 'a/**/b' } } }],
      });
      t.throws(
        () => delegateToken(crypto, { parent: star, sub: did(BOB), issuerKey: seed(ALICE), grants: [{ method: 'tools/call', args: { path: { glob: 'a/x/b' } } }] }),
        { code: 'grant_unknown' },
        'undecided containment is refused at mint time',
      );
      t.throws(() => mintToken(crypto, { issuerKey: seed(ROOT), sub: did(ALICE), aud: did(GW), nbf: T0, exp: T0, grants }), CapabilityError);
      t.throws(
        () => mintToken(crypto, { issuerKey: seed(ROOT), sub: did(ALICE), aud: did(GW), nbf: T0, exp: T0 + 1, grants: [{ method: 'x', args: { p: { glob: '../x' } } }] }),
        { code: 'malformed' },
      );
      // A chain of exactly MAX_CHAIN_DEPTH is fine; one more is refused.
      let tok = root;
      const keys = [ALICE, BOB];
      for (let i = 1; i < MAX_CHAIN_DEPTH; i++) {
        tok = delegateToken(crypto, { parent: tok, issuerKey: seed(keys[(i - 1) % 2]!), sub: did(keys[i % 2]!), grants: [grants[0]!] });
      }
      t.equal(mkChecker().check(encodeToken(tok), read('repo/x'), tok.sub, NOW).ok, true, `a chain of ${MAX_CHAIN_DEPTH} verifies`);
      t.throws(
        () => delegateToken(crypto, { parent: tok, issuerKey: seed(keys[(MAX_CHAIN_DEPTH - 1) % 2]!), sub: did(ALICE), grants: [grants[0]!] }),
        { code: 'chain_too_deep' },
      );
    });
  });
}
