import t from 'tap';
import CircuitBreaker from 'opossum';
import { CircuitGate } from './circuit.ts';

t.test('open: refused with the reset time left since it opened; closed: go', async (t) => {
  let now = 0;
  const breaker = new CircuitBreaker(async () => {}, { resetTimeout: 1000 });
  t.teardown(() => breaker.shutdown());
  const gate = new CircuitGate(breaker, 1000, () => now);
  now = 5000;
  t.same(gate.admit().refused, undefined, 'closed');
  breaker.open();
  now = 5250;
  t.same(gate.admit().refused, { retryAfterMs: 750 }, 'open at 5000: 750 ms left at 5250');
  t.equal(gate.retryAfterMs(), 750);
  now = 7000;
  t.same(gate.admit().refused, { retryAfterMs: 1 }, 'never less than 1');
  breaker.close();
  t.same(gate.admit().refused, undefined, 'closed again');
  t.equal(gate.retryAfterMs(), undefined);
  breaker.open();
  now = 7100;
  t.same(gate.admit().refused, { retryAfterMs: 900 }, 'reopened at 7000: timed from then');
});

t.test('half-open: one call holds the trial until it releases it; the others are refused without a hint', async (t) => {
  let release: () => void = () => {};
  const breaker = new CircuitBreaker(() => new Promise<void>((resolve) => (release = resolve)), { resetTimeout: 20 });
  t.teardown(() => breaker.shutdown());
  const gate = new CircuitGate(breaker, 20, () => Date.now());
  breaker.open();
  await new Promise((r) => setTimeout(r, 60));
  t.ok(breaker.halfOpen, 'half-open after the reset timeout');
  const first = gate.admit();
  t.equal(first.refused, undefined, 'the first call goes: it holds the trial');
  t.same(gate.admit().refused, {}, 'the next is refused, with no hint');
  first.release();
  first.release(); // twice is harmless
  const second = gate.admit();
  t.equal(second.refused, undefined, 'released without firing (refused further on): the next call may be the trial');
  t.same(gate.admit().refused, {});
  const trial = breaker.fire();
  const atFire = await breaker.fire().catch((e: unknown) => e);
  t.match(atFire, { code: 'EOPENBREAKER' }, 'opossum agrees: one trial at a time');
  t.match(gate.refusal(atFire, 'files'), { code: 'upstream_unavailable', message: /circuit open/, data: { upstream: 'files', breaker: 'open' } }, "opossum's refusal told as the gate's");
  t.equal(gate.refusal(new Error('timeout'), 'files'), undefined, 'any other failure is not a circuit refusal');
  release();
  await trial;
  second.release();
  t.ok(breaker.closed, 'the trial passed: closed');
  t.equal(gate.admit().refused, undefined);
  breaker.shutdown();
  t.equal(gate.admit().refused, undefined, 'shut down: fire() says so');
});
