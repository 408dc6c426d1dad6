import t from 'tap';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import { generateIdentity } from '../../runtime/identity/index.ts';
import { connectRedis, LimitError, RedisBudgetLedger, RedisRateLimiter } from '../../runtime/limits/index.ts';
import { freePort } from '../../runtime/redis/test-server.ts';
import { openAuditStore, startGatewayAudit } from '../gateway/audit.ts';
import type { BreakerState } from '../messages.ts';
import { breakerStateOf, guardedAudit, guardedLimits } from './breakers.ts';

// The Redis and audit-store breakers on their own: against a Redis that is not there (a real
// client on a closed port) and a real auditor whose SQLite store was closed under it.
const breaker = { timeoutMs: 5000, errorThresholdPercentage: 50, resetTimeoutMs: 60_000, volumeThreshold: 2 };
const rule = { capacity: 10, refillPerSecond: 1 };

async function unreachableRedis(t: { teardown(fn: () => void): void }) {
  const client = connectRedis(`redis://127.0.0.1:${await freePort()}`);
  t.teardown(() => client.disconnect());
  return { rate: new RedisRateLimiter(client), budget: new RedisBudgetLedger(client) };
}

t.test('fail closed: Redis failures open the breaker; then refusals are immediate and say why', async (t) => {
  const states: string[] = [];
  const g = guardedLimits(await unreachableRedis(t), breaker, 'fail-closed', (name, s) => states.push(`${name}=${s}`));
  t.teardown(() => g.shutdown());
  await t.rejects(g.rate.take('did:a', 'echo', rule), { code: 'limits_unavailable' });
  await t.rejects(g.budget.reserve('did:a', 1, 10), { code: 'limits_unavailable' });
  t.equal(breakerStateOf(g.breaker), 'open');
  t.same(states, ['redis=open']);
  const started = Date.now();
  const err = await g.rate.take('did:a', 'echo', rule).catch((e: unknown) => e);
  t.ok(err instanceof LimitError);
  t.match(err, { code: 'limits_unavailable', message: /circuit open/ });
  t.ok(Date.now() - started < breaker.timeoutMs, 'refused without waiting for Redis');
});

t.test('a refused rule is not a Redis failure and leaves the breaker closed', async (t) => {
  const g = guardedLimits(await unreachableRedis(t), breaker, 'fail-closed', () => {});
  t.teardown(() => g.shutdown());
  for (let i = 0; i < 5; i++) await t.rejects(g.rate.take('did:a', 'echo', { capacity: 0, refillPerSecond: 1 }), { code: 'bad_rule' });
  t.equal(breakerStateOf(g.breaker), 'closed');
});

t.test('local policy: this process\'s limits stand in while Redis is unavailable', async (t) => {
  const g = guardedLimits(await unreachableRedis(t), breaker, 'local', () => {});
  t.teardown(() => g.shutdown());
  const first = await g.rate.take('did:a', 'echo', { capacity: 1, refillPerSecond: 0.001 });
  t.equal(first.allowed, true);
  const second = await g.rate.take('did:a', 'echo', { capacity: 1, refillPerSecond: 0.001 });
  t.equal(second.allowed, false, 'the local bucket still limits');
  t.match(await g.budget.reserve('did:a', 3, 5), { ok: true, remaining: 2 });
  t.equal((await g.budget.reserve('did:a', 3, 5)).ok, false, 'the local budget still holds');
});

t.test('audit: a malformed event does not count; a failing store opens the breaker', async (t) => {
  const crypto = createCryptoProvider();
  const id = generateIdentity(crypto);
  const audit = startGatewayAudit(await openAuditStore('memory', crypto), crypto, { origin: 'talos.test/breakers', seed: id.sig.secretKey });
  t.teardown(() => audit.close().catch(() => {}));
  const states: BreakerState[] = [];
  const g = guardedAudit(() => audit, breaker, (_n, s) => states.push(s));
  t.teardown(() => g.shutdown());
  const event = { ts: Date.now(), kind: 'alert' as const, from: id.did, to: id.did, msg_hash: 'A'.repeat(43), reason: 'test' };
  await g.sink.append(event);
  for (let i = 0; i < 3; i++) await t.rejects(g.sink.append({ ...event, ts: -1 }), { code: 'bad_event' });
  t.equal(breakerStateOf(g.breaker), 'closed', 'refused events are not store failures');
  await audit.store.close();
  // Failures must dominate the window (the earlier answers count as successes).
  let failures = 0;
  while (breakerStateOf(g.breaker) !== 'open' && failures < 20) {
    await t.rejects(g.sink.append(event));
    failures++;
  }
  t.equal(breakerStateOf(g.breaker), 'open');
  t.equal(failures, 5, 'opened once failures were over half of the calls (5 of 9)');
  t.same(states, ['open']);
  await t.rejects(g.sink.append(event), { code: 'audit_unavailable', message: /circuit open/ });
  const none = guardedAudit(() => undefined, breaker, () => {});
  t.teardown(() => none.shutdown());
  await t.rejects(none.sink.append(event), { code: 'audit_unavailable', message: /restarting/ });
});
