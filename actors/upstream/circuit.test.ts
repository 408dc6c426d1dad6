import t from 'tap';
import CircuitBreaker from 'opossum';
import { circuitRefusal } from './circuit.ts';

t.test("circuitRefusal answers as opossum's fire() decides, with the reset time left while open", async (t) => {
  const breaker = new CircuitBreaker(async () => {}, { resetTimeout: 1000 });
  t.teardown(() => breaker.shutdown());
  const refusal = (now: number) => circuitRefusal(breaker, 5000, 1000, now);
  t.equal(refusal(5000), undefined, 'closed: the call may go');
  breaker.open();
  t.same(refusal(5250), { retryAfterMs: 750 }, 'open: the reset time left');
  t.same(refusal(7000), { retryAfterMs: 1 }, 'never less than 1');
  await t.rejects(breaker.fire(), { code: 'EOPENBREAKER' }, 'opossum refuses too');
});

t.test('half-open: the trial call may go, the calls behind it are refused without a hint', async (t) => {
  let release: () => void = () => {};
  const breaker = new CircuitBreaker(() => new Promise<void>((resolve) => (release = resolve)), { resetTimeout: 20 });
  t.teardown(() => breaker.shutdown());
  breaker.open();
  await new Promise((r) => setTimeout(r, 60));
  t.ok(breaker.halfOpen, 'half-open after the reset timeout');
  t.equal(circuitRefusal(breaker, 0, 20, Date.now()), undefined, 'the trial call may go');
  const trial = breaker.fire();
  t.same(circuitRefusal(breaker, 0, 20, Date.now()), {}, 'with the trial in flight: refused, no hint');
  await t.rejects(breaker.fire(), { code: 'EOPENBREAKER' }, 'as opossum refuses it');
  release();
  await trial;
  t.ok(breaker.closed, 'the trial passed: closed');
  t.equal(circuitRefusal(breaker, 0, 20, Date.now()), undefined);
});
