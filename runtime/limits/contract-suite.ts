import type { Test } from 'tap';
import { LimitError, type BudgetLedger, type RateLimiter } from './types.ts';

/**
 * The one contract both limit backends must pass (Redis and in-process): the same calls give
 * the same answers. `make` returns fresh, empty instances for each subtest.
 */
export function limitsContract(
  t: Test,
  name: string,
  make: () => Promise<{ rate: RateLimiter; budget: BudgetLedger; close: () => Promise<void> }>,
): void {
  let n = 0;
  const agent = () => `did:talos:agent-${name}-${++n}-${Math.random().toString(36).slice(2)}`;
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  t.test(`${name}: a bucket allows its capacity, then refuses with a retry-after`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    const rule = { capacity: 3, refillPerSecond: 0.5 };
    const got = [];
    for (let i = 0; i < 4; i++) got.push(await l.rate.take(a, 'echo', rule));
    t.same(got.slice(0, 3).map((d) => [d.allowed, d.remaining]), [[true, 2], [true, 1], [true, 0]]);
    t.equal(got[3]!.allowed, false);
    t.equal(got[3]!.remaining, 0);
    // One token refills in 2 s at 0.5/s; a little of that has already passed.
    t.ok(got[3]!.retryAfterMs > 1000 && got[3]!.retryAfterMs <= 2000, `retryAfterMs ${got[3]!.retryAfterMs}`);
  });

  t.test(`${name}: buckets are per agent and per tool`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const [a, b] = [agent(), agent()];
    const rule = { capacity: 1, refillPerSecond: 0.01 };
    t.equal((await l.rate.take(a, 'x', rule)).allowed, true);
    t.equal((await l.rate.take(a, 'x', rule)).allowed, false);
    t.equal((await l.rate.take(a, 'y', rule)).allowed, true, 'other tool');
    t.equal((await l.rate.take(b, 'x', rule)).allowed, true, 'other agent');
    // A tool name with the separator in it must not alias another bucket.
    t.equal((await l.rate.take(a, 'x:y', rule)).allowed, true);
  });

  t.test(`${name}: tokens refill with elapsed time`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    const rule = { capacity: 2, refillPerSecond: 50 };
    await l.rate.take(a, 't', rule);
    await l.rate.take(a, 't', rule);
    const refused = await l.rate.take(a, 't', rule);
    t.equal(refused.allowed, false);
    t.ok(refused.retryAfterMs >= 1 && refused.retryAfterMs <= 20);
    await sleep(refused.retryAfterMs + 15);
    t.equal((await l.rate.take(a, 't', rule)).allowed, true, 'allowed after waiting retryAfterMs');
  });

  t.test(`${name}: a cost above one takes several tokens`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    const rule = { capacity: 5, refillPerSecond: 0.01 };
    t.same(await l.rate.take(a, 't', rule, 3), { allowed: true, remaining: 2, retryAfterMs: 0 });
    const r = await l.rate.take(a, 't', rule, 3);
    t.equal(r.allowed, false);
    t.equal((await l.rate.take(a, 't', rule, 2)).allowed, true, 'a refused take consumed nothing');
  });

  t.test(`${name}: concurrent takes never exceed the capacity`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    const rule = { capacity: 10, refillPerSecond: 0.001 };
    const res = await Promise.all(Array.from({ length: 40 }, () => l.rate.take(a, 'c', rule)));
    t.equal(res.filter((d) => d.allowed).length, 10);
  });

  t.test(`${name}: bad rules and keys are refused with a typed error`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    await t.rejects(l.rate.take(a, 't', { capacity: 0, refillPerSecond: 1 }), LimitError);
    await t.rejects(l.rate.take(a, 't', { capacity: 1, refillPerSecond: 0 }), LimitError);
    await t.rejects(l.rate.take(a, 't', { capacity: 2, refillPerSecond: 1 }, 3), { code: 'bad_rule' });
    await t.rejects(l.rate.take('', 't', { capacity: 1, refillPerSecond: 1 }), { code: 'bad_key' });
    await t.rejects(l.budget.reserve(a, -1, 10), { code: 'bad_amount' });
    await t.rejects(l.budget.reserve(a, 1.5, 10), { code: 'bad_amount' });
    t.equal(await l.budget.remaining(a, 10), 10, 'nothing changed');
  });

  t.test(`${name}: a budget reserves only while enough is left`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    t.equal(await l.budget.remaining(a, 10), 10, 'a new agent starts at its limit');
    t.match(await l.budget.reserve(a, 4, 10), { ok: true, remaining: 6 });
    t.match(await l.budget.reserve(a, 4, 10), { ok: true, remaining: 2 });
    t.match(await l.budget.reserve(a, 4, 10), { ok: false, remaining: 2 }, 'refused, unchanged');
    t.match(await l.budget.reserve(a, 2, 10), { ok: true, remaining: 0 });
    t.match(await l.budget.reserve(a, 1, 10), { ok: false, remaining: 0 });
    t.match(await l.budget.reserve(a, 0, 10), { ok: true, remaining: 0 }, 'a free call passes');
  });

  t.test(`${name}: settle refunds the unused part, never above the limit`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    const { window } = await l.budget.reserve(a, 5, 10);
    t.equal(await l.budget.settle(a, 5, 2, window), 8, 'refunds 3');
    t.equal(await l.budget.settle(a, 5, 9, window), 8, 'actual above reserved refunds nothing');
    t.equal(await l.budget.settle(a, 5, 0, window), 10, 'clamped to the limit');
    t.equal(await l.budget.remaining(a, 10), 10);
  });

  t.test(`${name}: concurrent reservations never overdraw`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const a = agent();
    const res = await Promise.all(Array.from({ length: 30 }, () => l.budget.reserve(a, 7, 100)));
    t.equal(res.filter((r) => r.ok).length, 14);
    t.equal(await l.budget.remaining(a, 100), 2);
  });

  t.test(`${name}: reset starts a new window for one agent or all`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    const [a, b] = [agent(), agent()];
    await l.budget.reserve(a, 10, 10);
    const old = await l.budget.reserve(b, 10, 10);
    await l.budget.reset(a);
    t.equal(await l.budget.remaining(a, 10), 10);
    t.equal(await l.budget.remaining(b, 10), 0);
    await l.budget.reset();
    t.equal(await l.budget.remaining(b, 10), 10);
    t.equal(await l.budget.settle(b, 10, 0, old.window), 0, 'a settle after a reset refunds nothing');
    // A call in flight across the reset: its refund must not land in the new window.
    const fresh = await l.budget.reserve(b, 10, 10);
    t.not(fresh.window, old.window, 'a new window');
    t.equal(await l.budget.settle(b, 10, 0, old.window), 0, 'the old reservation refunds nothing into the new window');
    t.match(await l.budget.reserve(b, 10, 10), { ok: false, remaining: 0 }, 'so the new window is not spent twice');
    t.equal(await l.budget.settle(b, 10, 0, fresh.window), 10, 'its own reservation still refunds');
  });

  t.test(`${name}: the current window is claimed once, and a reset keeps the claim`, async (t) => {
    const l = await make();
    t.teardown(l.close);
    t.equal(await l.budget.claimWindow(3_600_000), 'first', 'nothing claimed before');
    t.equal(await l.budget.claimWindow(3_600_000), 'stale', 'the same window again');
    t.equal(await l.budget.claimWindow(0), 'stale', 'an older window');
    const claims = await Promise.all([1, 2, 3, 4].map(() => l.budget.claimWindow(7_200_000)));
    t.same(claims.filter((c) => c === 'newer'), ['newer'], 'concurrent claims of a later window: one wins');
    await l.budget.reset();
    t.equal(await l.budget.claimWindow(7_200_000), 'stale', 'a reset does not forget the claim');
    await t.rejects(l.budget.claimWindow(-1), { code: 'bad_amount' });
  });
}
