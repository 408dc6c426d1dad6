import t from 'tap';
import { Rng } from './random.ts';

t.test('the same seed gives the same stream; another seed or label another one', async (t) => {
  const take = (r: Rng) => Array.from({ length: 64 }, () => r.u32());
  t.same(take(new Rng(7)), take(new Rng(7)));
  t.not(take(new Rng(7)).join(), take(new Rng(8)).join());
  t.not(take(new Rng(7).fork('a')).join(), take(new Rng(7).fork('b')).join());
  // A fork depends on the seed and label only, not on how much the parent has been used.
  const used = new Rng(7);
  take(used);
  t.same(take(used.fork('x')), take(new Rng(7).fork('x')));
});

t.test('int() stays in range and covers it evenly; range() is inclusive', async (t) => {
  const r = new Rng(1);
  const counts = new Array(6).fill(0);
  for (let i = 0; i < 60_000; i++) counts[r.int(6)]++;
  for (const c of counts) t.ok(c > 9_000 && c < 11_000, `bucket count ${c}`);
  const seen = new Set<number>();
  for (let i = 0; i < 1000; i++) seen.add(r.range(3, 5));
  t.same([...seen].sort(), [3, 4, 5]);
  t.throws(() => r.int(0), RangeError);
  t.throws(() => r.pick([]), RangeError);
});

t.test('float, chance and exponential have the expected means', async (t) => {
  const r = new Rng(2);
  let f = 0;
  let c = 0;
  let e = 0;
  const n = 50_000;
  let outside = 0;
  for (let i = 0; i < n; i++) {
    const x = r.float();
    if (!(x >= 0 && x < 1)) outside++;
    f += x;
    if (r.chance(0.25)) c++;
    e += r.exponential(10);
  }
  t.equal(outside, 0, 'floats in [0, 1)');
  t.ok(Math.abs(f / n - 0.5) < 0.01, 'float mean');
  t.ok(Math.abs(c / n - 0.25) < 0.01, 'chance frequency');
  t.ok(Math.abs(e / n - 10) < 0.3, 'exponential mean');
  t.equal(r.chance(0), false);
});

t.test('the crypto byte source is seeded too', async (t) => {
  t.same(new Rng(3).randomSource('c')(48), new Rng(3).randomSource('c')(48));
  t.not(Buffer.from(new Rng(3).randomSource('c')(16)).toString('hex'), Buffer.from(new Rng(4).randomSource('c')(16)).toString('hex'));
});
