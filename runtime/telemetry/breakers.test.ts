import t from 'tap';
import CircuitBreaker from 'opossum';
import { breakerState, observeBreaker } from './breakers.ts';
import { TalosMetrics } from './metrics.ts';

const value = async (metrics: TalosMetrics, name: string) =>
  (await metrics.breakerState.get()).values.find((v) => v.labels.name === name)?.value;

t.test('a real opossum breaker: closed -> open -> half-open -> closed, in the metric and to the TGA', async (t) => {
  let failing = true;
  const breaker = new CircuitBreaker(async () => {
    if (failing) throw new Error('upstream down');
    return 'ok';
  }, { errorThresholdPercentage: 50, volumeThreshold: 1, resetTimeout: 50, timeout: false, enableSnapshots: false });
  t.teardown(() => breaker.shutdown());
  const metrics = new TalosMetrics();
  const changes: string[] = [];
  const stop = observeBreaker(metrics, 'upstream:fs', breaker, (name, state) => changes.push(`${name}=${state}`));
  t.equal(await value(metrics, 'upstream:fs'), 0, 'closed at first');

  await t.rejects(breaker.fire());
  t.equal(breakerState(breaker), 'open');
  t.equal(await value(metrics, 'upstream:fs'), 2);
  await t.rejects(breaker.fire(), 'open: refused without calling');

  await new Promise((r) => setTimeout(r, 120));
  t.equal(breakerState(breaker), 'halfOpen');
  t.equal(await value(metrics, 'upstream:fs'), 1);
  failing = false;
  t.equal(await breaker.fire(), 'ok');
  t.equal(await value(metrics, 'upstream:fs'), 0, 'closed again after a good trial call');
  t.same(changes, ['upstream:fs=open', 'upstream:fs=halfOpen', 'upstream:fs=closed']);

  stop();
  failing = true;
  await t.rejects(breaker.fire());
  t.equal(changes.length, 3, 'no reports after stop');
});
