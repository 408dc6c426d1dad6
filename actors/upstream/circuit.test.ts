import t from 'tap';
import CircuitBreaker from 'opossum';
import { circuitOpenFor } from './circuit.ts';

t.test('circuitOpenFor: while open, the reset time left since it opened; otherwise undefined', async (t) => {
  let now = 0;
  const breaker = new CircuitBreaker(async () => {}, { resetTimeout: 1000 });
  t.teardown(() => breaker.shutdown());
  const openFor = circuitOpenFor(breaker, 1000, () => now);
  now = 5000;
  t.equal(openFor(), undefined, 'closed');
  breaker.open();
  now = 5250;
  t.equal(openFor(), 750, 'open at 5000: 750 ms left at 5250');
  now = 7000;
  t.equal(openFor(), 1, 'never less than 1');
  breaker.close();
  t.equal(openFor(), undefined, 'closed again');
  breaker.open();
  now = 7100;
  t.equal(openFor(), 900, 'reopened at 7000: timed from then');
});

t.test('half-open and shut down: undefined, and opossum decides', async (t) => {
  const breaker = new CircuitBreaker(async () => {}, { resetTimeout: 20 });
  const openFor = circuitOpenFor(breaker, 20, () => Date.now());
  breaker.open();
  await new Promise((r) => setTimeout(r, 60));
  t.ok(breaker.halfOpen, 'half-open after the reset timeout');
  t.equal(openFor(), undefined);
  breaker.shutdown();
  t.equal(openFor(), undefined, 'shut down');
});
