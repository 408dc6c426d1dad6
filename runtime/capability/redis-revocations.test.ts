import t from 'tap';
import { Redis } from 'ioredis';
import { providers } from '../crypto/index.ts';
import { fromHex } from '../encoding/bytes.ts';
import { jcs } from '../encoding/jcs.ts';
import { didFromPublicKey } from '../identity/did.ts';
import { startTestRedis } from '../redis/test-server.ts';
import { CapabilityChecker } from './checker.ts';
import { DEFAULT_REVOCATIONS_KEY, RedisRevocationSource } from './redis-revocations.ts';
import { mintRevocation } from './revocation.ts';
import { delegateToken, encodeToken, mintToken } from './token.ts';

const T0 = 1_800_000_000;
const NOW = (T0 + 10) * 1000;
const seed = (n: number) => fromHex(n.toString(16).padStart(2, '0').repeat(32));
const read = (path: string) => ({ method: 'tools/call', tool: 'read_text_file', args: { path } });

/** Waits for a condition that another connection makes true (no timing is asserted). */
async function until(cond: () => boolean, what: string, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const redis = await startTestRedis({ appendonly: true, owned: true });
t.teardown(() => redis.stop());

for (const crypto of providers()) {
  t.test(`revocations spread through Redis (${crypto.name})`, async (t) => {
    const key = `${DEFAULT_REVOCATIONS_KEY}:${crypto.name}`;
    const did = (n: number) => didFromPublicKey(crypto.ed25519PublicKey(seed(n)));
    const [ROOT, ALICE, BOB, GW] = [1, 2, 3, 4];
    const grants = [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/**' } } }];
    const root = mintToken(crypto, { issuerKey: seed(ROOT), sub: did(ALICE), aud: did(GW), grants, nbf: T0, exp: T0 + 3600 });
    const child = delegateToken(crypto, { parent: root, issuerKey: seed(ALICE), sub: did(BOB), grants });
    const other = delegateToken(crypto, { parent: root, issuerKey: seed(ALICE), sub: did(BOB), grants, exp: T0 + 3000 });
    const third = delegateToken(crypto, { parent: root, issuerKey: seed(ALICE), sub: did(BOB), grants, exp: T0 + 2000 });

    const sources: RedisRevocationSource[] = [];
    const checkers: CapabilityChecker[] = [];
    const gateway = async () => {
      const source = new RedisRevocationSource({ url: redis.url, key });
      sources.push(source);
      await source.ready();
      const checker = new CapabilityChecker({ crypto, audience: did(GW), trustedRoots: [did(ROOT)], revocations: source });
      checkers.push(checker);
      return { source, checker };
    };
    const raw = new Redis(redis.url, { maxRetriesPerRequest: null });
    raw.on('error', () => {});
    t.teardown(async () => {
      for (const c of checkers) c.close();
      for (const s of sources) await s.close();
      raw.disconnect();
    });

    const a = await gateway();
    const b = await gateway();
    const check = (gw: { checker: CapabilityChecker }, tok = child) => gw.checker.check(encodeToken(tok), read('repo/x'), did(BOB), NOW);
    t.equal(check(a).ok, true);
    t.equal(check(b).ok, true, 'both gateways have verified and cached the token');

    await a.source.publish(mintRevocation(crypto, seed(ALICE), child.id, NOW));
    t.match(check(a), { code: 'revoked' }, 'the publishing gateway refuses at once');
    await until(() => b.checker.isRevoked(child.id), 'gateway B to learn the revocation');
    t.match(check(b), { code: 'revoked' }, 'the other gateway refuses its cached token');
    t.equal(check(b, other).ok, true, 'siblings are unaffected');

    // Junk and forgeries: stored and announced, ignored and counted.
    const forged = { ...mintRevocation(crypto, seed(ROOT), other.id, NOW), ts: NOW + 5 };
    await raw.hset(key, forged.sig, jcs(forged));
    await raw.publish(key, jcs(forged));
    await raw.publish(key, '{not json');
    await until(() => b.checker.stats.revocationsIgnored === 1 && b.source.unreadable === 1, 'the forgery to be counted');
    t.equal(check(b, other).ok, true, 'a forged revocation changes nothing');
    await t.rejects(b.source.publish({ v: 1 } as never), { code: 'bad_revocation' });

    // A gateway that starts later loads the whole persisted set.
    const late = await gateway();
    t.match(check(late), { code: 'revoked' });
    t.equal(late.checker.stats.revocationsIgnored, 1);

    // Outage: a revocation lands in the hash without being announced (as if B had missed the
    // message), then the server dies and comes back (append-only file kept): B reloads the
    // whole set on reconnect and learns it.
    const missed = mintRevocation(crypto, seed(ROOT), other.id, NOW);
    await raw.hset(key, missed.sig, jcs(missed));
    await new Promise((r) => setTimeout(r, 50));
    t.equal(b.checker.isRevoked(other.id), false, 'B has not heard of it');
    const reloadsBefore = b.source.reloads;
    await redis.kill(true);
    await redis.restart();
    await until(() => b.source.reloads > reloadsBefore, 'gateway B to reconnect and reload');
    await until(() => b.checker.isRevoked(other.id), 'gateway B to apply the revocation it missed');
    t.match(check(b, other), { code: 'revoked' });
    t.match(check(b), { code: 'revoked' }, 'revocations persisted across the restart');
    // And announcements flow again after the reconnect.
    await until(() => a.source.reloads > 1, 'gateway A to reconnect');
    await a.source.publish(mintRevocation(crypto, seed(ALICE), third.id, NOW));
    await until(() => b.checker.isRevoked(third.id), 'gateway B to hear announcements again');
    t.match(check(b, third), { code: 'revoked' });
  });
}

t.test('only well-formed revocations are kept, and at most maxKnown of them', async (t) => {
  const crypto = providers()[0]!;
  const key = `${DEFAULT_REVOCATIONS_KEY}:bounds`;
  const raw = new Redis(redis.url, { maxRetriesPerRequest: null });
  raw.on('error', () => {});
  const source = new RedisRevocationSource({ url: redis.url, key, maxKnown: 2 });
  t.teardown(async () => {
    await source.close();
    raw.disconnect();
  });
  await source.ready();
  const seen: unknown[] = [];
  source.subscribe((r) => seen.push(r));

  // JSON that is not a revocation, announced and stored: dropped and counted, never replayed.
  await raw.publish(key, JSON.stringify({ junk: 'x'.repeat(1000) }));
  await raw.hset(key, 'junk', '[1,2,3]');
  await until(() => source.unreadable === 1, 'the announced junk to be counted');
  // Well-formed (signatures are the checker's business): kept up to maxKnown, then refused.
  const revs = [1, 2, 3].map((n) => mintRevocation(crypto, seed(n), 'A'.repeat(22), NOW + n));
  for (const r of revs) await raw.publish(key, jcs(r));
  await until(() => source.refused === 1, 'the third revocation to be refused');
  t.equal(seen.length, 2, 'listeners got the two kept revocations only');
  await t.rejects(source.publish(mintRevocation(crypto, seed(4), 'A'.repeat(22), NOW)), { code: 'revocations_full' });
  t.equal(await raw.hexists(key, mintRevocation(crypto, seed(4), 'A'.repeat(22), NOW).sig), 0, 'a refused publish writes nothing');
  await source.publish(revs[0]!); // one it already keeps is still published

  const late: unknown[] = [];
  const fresh = new RedisRevocationSource({ url: redis.url, key });
  t.teardown(() => fresh.close());
  await fresh.ready();
  fresh.subscribe((r) => late.push(r));
  t.equal(fresh.unreadable, 1, 'the stored junk is counted on load');
  t.same(late, [revs[0]], 'a new subscriber is replayed revocations only');
});

t.test('ready() refuses with redis_unreachable when Redis does not answer in time (and the source closes)', async (t) => {
  const { createServer } = await import('node:net');
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
  const port = (probe.address() as { port: number }).port;
  await new Promise((r) => probe.close(r)); // nothing listens there now
  const source = new RedisRevocationSource({ url: `redis://127.0.0.1:${port}` });
  await t.rejects(source.ready(300), { code: 'redis_unreachable' });
  await source.close();
});
