import t from 'tap';
import { limitsContract } from '../runtime/limits/contract-suite.ts';
import { SimRedis } from './limits.ts';
import { SimNetwork } from './network.ts';
import { Rng } from './random.ts';
import { Scheduler } from './scheduler.ts';
import { KEY_PREFIX_BYTES, SecretScanner } from './secrets-scan.ts';
import { addon } from '../runtime/crypto/native-addon.ts';
import { SimDisk } from './storage.ts';
import { MAX_TRACE_EVENTS, TraceWriter, TRUNCATED_FAULT } from './trace-writer.ts';
import { decodeTrace, encodeTrace } from '../runtime/inspect/trace.ts';
import { runScenario } from './runner.ts';
import type { RpcResponse } from '../runtime/mcp/jsonrpc.ts';
import { MAX_RETRY_AFTER_MS, retryWait } from './system/agent.ts';

// The simulated Redis passes the same contract as the real limit adapters (on the real clock here).
limitsContract(t, 'simulated', async () => {
  const redis = new SimRedis(() => performance.timeOrigin + performance.now());
  return { rate: redis.rate, budget: redis.budget, close: async () => void (await Promise.all([redis.rate.close(), redis.budget.close()])) };
});

t.test('a Redis outage fails closed with limits_unavailable and changes nothing', async (t) => {
  let now = 0;
  const redis = new SimRedis(() => now);
  const rule = { capacity: 1, refillPerSecond: 1 };
  redis.available = false;
  await t.rejects(redis.rate.take('a', 'x', rule), { code: 'limits_unavailable' });
  await t.rejects(redis.budget.reserve('a', 1, 5), { code: 'limits_unavailable' });
  redis.available = true;
  t.equal((await redis.rate.take('a', 'x', rule)).allowed, true, 'the bucket was not touched while down');
  t.equal((await redis.budget.reserve('a', 5, 5)).ok, true, 'the budget was not touched while down');
  now += 1000;
  t.equal((await redis.rate.take('a', 'x', rule)).allowed, true, 'refills on the simulated clock');
});

t.test('the disk loses exactly the unflushed writes on a crash', async (t) => {
  const d = new SimDisk();
  d.commit({ a: '1', b: '2' });
  d.write('c', '3');
  d.write('a', null);
  t.same(d.keys(''), ['b', 'c'], 'reads see buffered writes');
  t.equal(d.crash(), 2);
  t.same(d.keys(''), ['a', 'b']);
  t.equal(d.get('a'), '1');
  t.equal(d.get('c'), undefined);
});

function net(seed = 1) {
  const s = new Scheduler();
  const trace = new TraceWriter(TraceWriter.header('test', seed), () => s.now);
  const n = new SimNetwork(s, new Rng(seed), trace);
  const got: string[] = [];
  n.attach('b', (p) => void got.push(`${p.payload}@${s.now}`));
  return { s, n, got, trace };
}

t.test('latency, partitions, heal and down nodes', async (t) => {
  const { s, n, got } = net();
  n.configure('a', 'b', { baseMs: 10, jitterMeanMs: 0 });
  n.send('a', 'b', 'm', 'zero');
  await s.run(20);
  t.same(got, ['zero@10']);
  got.length = 0;
  s.at(25, 'noop', () => {});
  await s.run(25);
  n.send('a', 'b', 'm', 'one');
  n.send('a', 'b', 'm', 'in flight when the link is cut');
  await s.run(5);
  n.partition(['a'], ['b']);
  n.send('a', 'b', 'm', 'lost');
  await s.run(50);
  n.heal();
  n.setDown('b', true);
  n.send('a', 'b', 'm', 'down');
  await s.run(100);
  n.setDown('b', false);
  n.send('a', 'b', 'm', 'two');
  await s.run(200);
  t.same(got, ['two@110'], 'a partition also loses what was in flight');
});

t.test('a packet lost to a partition, a down receiver or no receiver is a drop fault in the trace', async (t) => {
  const { s, n, got, trace } = net();
  n.partition(['a'], ['b']);
  n.send('a', 'b', 'm', 'cut');
  await s.run(50);
  n.heal();
  n.setDown('b', true);
  n.send('a', 'b', 'm', 'down');
  await s.run(100);
  n.setDown('b', false);
  n.send('a', 'c', 'm', 'nobody there');
  n.send('a', 'b', 'm', 'arrives');
  await s.run(200);
  t.equal(got.length, 1);
  const drops = decodeTrace(trace.encode()).events.flatMap((e) => (e.kind === 'fault' && e.fault === 'drop' ? [`${e.target}: ${e.detail}`] : []));
  t.same(drops, ['b: m from a: partitioned', 'b: m from a: receiver down', 'c: m from a: no receiver']);
});

t.test('drop, duplicate and reorder happen at their configured rates, deterministically', async (t) => {
  const run = async (seed: number) => {
    const { s, n, got } = net(seed);
    n.configure('a', 'b', { drop: 0.1, duplicate: 0.1, reorder: 0.2 });
    for (let i = 0; i < 1000; i++) s.at(i, 'send', () => n.send('a', 'b', 'm', String(i)));
    await s.run(100_000);
    return got;
  };
  const got = await run(5);
  t.same(got, await run(5), 'same seed, same deliveries');
  t.ok(got.length > 900 && got.length < 1100, `${got.length} deliveries`);
  const order = got.map((g) => Number(g.split('@')[0]));
  let inversions = 0;
  for (let i = 1; i < order.length; i++) if (order[i]! < order[i - 1]!) inversions++;
  t.ok(inversions > 50, `${inversions} reorderings`);
});

t.test('the scanner finds canaries and key bytes in any common encoding', async (t) => {
  const sc = new SecretScanner();
  const key = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);
  sc.key(key, 'k');
  sc.canary('cnry-0123456789abcdef');
  const embed = new Uint8Array(100);
  embed.set(key, 33);
  t.equal(sc.scan(JSON.stringify({ x: Buffer.from(embed).toString('base64url') })), 'key bytes (k)');
  t.equal(sc.scan(`"${Buffer.from(embed).toString('base64')}"`), 'key bytes (k)');
  t.equal(sc.scan(`id=${Buffer.from(key).toString('hex')}`), 'key bytes (k)');
  t.equal(sc.scan('{"note":"cnry-0123456789abcdef"}'), 'plaintext canary cnry-0123456789abcdef');
  t.equal(sc.scan('{"note":"cnry-ffffffffffffffff"}'), null, 'an unregistered canary is not a secret');
  t.equal(sc.scan(Buffer.from(new Uint8Array(64).fill(7)).toString('base64url')), null);
  // A plaintext that crosses encoded (a frame whose ct is not really encrypted) still shows its canary.
  const plaintext = Buffer.from('{"jsonrpc":"2.0","params":{"note":"cnry-0123456789abcdef"}}');
  t.equal(sc.scan(`{"ct":"${plaintext.toString('base64url')}"}`), 'plaintext canary cnry-0123456789abcdef (base64-encoded)');
  t.equal(sc.scan(`{"ct":"${plaintext.toString('hex')}"}`), 'plaintext canary cnry-0123456789abcdef (hex-encoded)');
  t.equal(sc.scan(`{"ct":"${Buffer.from('{"note":"cnry-ffffffffffffffff"}').toString('base64url')}"}`), null, 'an unregistered canary, encoded');
});

t.test('every secret of a ratchet state is known to the scanner, on both sides', async (t) => {
  // Seed 3 of partition loses frames both ways, so both sides hold skipped message keys.
  const labels = new Set<string>();
  const r = await runScenario('partition', 3, {
    observe: (world) => {
      const key = world.scanner.key.bind(world.scanner);
      world.scanner.key = (bytes, label) => {
        labels.add(label.replace(/^agent-\d+/, 'agent'));
        key(bytes, label);
      };
    },
  });
  t.ok(r.ok, r.violation?.detail ?? 'passes');
  for (const owner of ['agent', 'gateway']) {
    for (const what of ['root key', 'sending chain key', 'receiving chain key', 'ratchet secret', 'skipped message key']) {
      t.ok(labels.has(`${owner} ${what}`), `${owner} ${what}`);
    }
  }
});

t.test('the scanner agrees with a plain regex-and-Buffer reading of its rules on random texts', async (t) => {
  // The reference states the scanner's documented rules the obvious way (regexes, Node's
  // decoders), with the same decoding choices: it pins the fast paths (character table, head
  // bitmap, indexOf walk, scratch buffer), not the rules themselves.
  const rng = new Rng(7, 'scanner');
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256));
  const keys = Array.from({ length: 8 }, (_, i) => ({ key: bytes(32), label: `k${i}` }));
  const canaries = Array.from({ length: 4 }, () => `cnry-${rng.hex(8)}`);
  t.ok(addon?.mayHoldSecret, 'the native filter is built (npm ci)');
  // With the native filter first (as runs scan), and the JavaScript reading alone.
  const scanners = [new SecretScanner(), new SecretScanner({ nativeFilter: false })];
  for (const sc of scanners) {
    for (const k of keys) sc.key(k.key, k.label);
    for (const c of canaries) sc.canary(c);
  }
  const findCanary = (s: string) => [...s.matchAll(/cnry-[0-9a-f]{16}/g)].map((m) => m[0]).find((c) => canaries.includes(c));
  const inBytes = (d: Buffer, encoding: string) => {
    const c = findCanary(d.toString('latin1'));
    if (c) return `plaintext canary ${c} (${encoding}-encoded)`;
    let first: { at: number; label: string } | undefined;
    for (const k of keys) {
      const at = d.indexOf(k.key.subarray(0, KEY_PREFIX_BYTES));
      if (at >= 0 && (!first || at < first.at)) first = { at, label: k.label };
    }
    return first ? `key bytes (${first.label})` : null;
  };
  const reference = (text: string): string | null => {
    const c = findCanary(text);
    if (c) return `plaintext canary ${c}`;
    for (const [run] of text.matchAll(/[A-Za-z0-9_\-+/]{16,}/g)) {
      const hit = inBytes(Buffer.from(run.length % 4 === 1 ? run.slice(0, -1) : run, 'base64'), 'base64');
      if (hit) return hit;
      if (run.length >= 2 * KEY_PREFIX_BYTES && /^[0-9a-fA-F]+$/.test(run)) {
        const h = inBytes(Buffer.from(run.length % 2 ? run.slice(0, -1) : run, 'hex'), 'hex');
        if (h) return h;
      }
    }
    return null;
  };
  // What a piece may hide: a whole key prefix (exactly 16 base64 or 24 hex characters when
  // alone), one that differs in its last byte, key bytes that are not a prefix, or a canary.
  const secret = (): Uint8Array => {
    const key = keys[rng.int(keys.length)]!.key;
    switch (rng.int(4)) {
      case 0:
        return key.subarray(0, KEY_PREFIX_BYTES + rng.int(4));
      case 1:
        return Uint8Array.from(key.subarray(0, KEY_PREFIX_BYTES), (b, i) => (i === KEY_PREFIX_BYTES - 1 ? b ^ (1 + rng.int(255)) : b));
      case 2:
        return key.subarray(1 + rng.int(4), 20);
      default:
        return Buffer.from(`{"note":"${canaries[rng.int(canaries.length)]}"}`);
    }
  };
  const piece = (): string => {
    const around = rng.chance(0.03) ? 3000 + rng.int(4000) : 20; // some runs outgrow the 4 KiB scratch
    const body = rng.chance(0.1) ? secret() : rng.chance(0.25) ? Buffer.concat([bytes(rng.int(around)), secret(), bytes(rng.int(around))]) : bytes(rng.int(40));
    const encoded = Buffer.from(body).toString((['base64', 'base64url', 'hex', 'hex', 'latin1'] as const)[rng.int(5)]!);
    return rng.chance(0.2) ? encoded.toUpperCase() : encoded;
  };
  // Empty separators join pieces into one run; a text may end inside a run.
  const separators = ['"', ',', ':', ' ', '=', '.', 'é', '\u{1F600}', '\n', '', ''];
  const texts = 6000;
  let found = 0;
  const disagreements = [0, 0];
  for (let i = 0; i < texts; i++) {
    let text = '';
    for (let j = rng.int(6); j >= 0; j--) text += piece() + (j > 0 || rng.chance(0.5) ? separators[rng.int(separators.length)] : '');
    const want = reference(text);
    if (want) found++;
    scanners.forEach((sc, s) => void (sc.scan(text) !== want && disagreements[s]!++));
  }
  t.same(disagreements, [0, 0], `${found} of ${texts} texts hold a secret`);
  t.ok(found > texts / 10, 'enough texts with secrets to mean something');
});

t.test('the native filter keeps up with thousands of keys (its table grows) and refuses bad calls', async (t) => {
  const rng = new Rng(8, 'filter');
  const bytes = (n: number) => Uint8Array.from({ length: n }, () => rng.int(256));
  const keys = Array.from({ length: 3000 }, () => bytes(32));
  const scanners = [new SecretScanner(), new SecretScanner({ nativeFilter: false })];
  keys.forEach((k, i) => scanners.forEach((sc) => sc.key(k, `k${i}`)));
  const frame = (body: Uint8Array, encoding: 'base64url' | 'hex') => `{"v":1,"ct":"${Buffer.from(body).toString(encoding)}","n":3}`;
  for (let i = 0; i < 300; i++) {
    const k = rng.int(keys.length);
    const encoding = rng.chance(0.5) ? 'base64url' : 'hex';
    const leaked = frame(Buffer.concat([bytes(rng.int(9)), keys[k]!.subarray(0, KEY_PREFIX_BYTES), bytes(rng.int(9))]), encoding);
    const clean = frame(bytes(60 + rng.int(200)), encoding);
    for (const sc of scanners) {
      t.equal(sc.scan(leaked), `key bytes (k${k})`);
      t.equal(sc.scan(clean), null);
    }
  }
  // The filter answers no for clean texts (the JavaScript reading never runs), maybe for the
  // rest; around its text limit (8,192 UTF-16 units: that long or longer, always maybe) too.
  const [filtered, plain] = scanners as [SecretScanner, SecretScanner];
  const proto = SecretScanner.prototype as unknown as { scanRun: (...a: unknown[]) => unknown };
  const scanRun = proto.scanRun;
  let read = 0;
  proto.scanRun = function (this: unknown, ...a: unknown[]) {
    read++;
    return scanRun.apply(this, a);
  };
  try {
    for (let i = 0; i < 50; i++) filtered.scan(frame(bytes(200), 'base64url'));
    t.equal(read, 0, 'clean frames: never read in JavaScript');
    plain.scan(frame(bytes(200), 'base64url'));
    t.ok(read > 0, 'without the filter they are');
  } finally {
    proto.scanRun = scanRun;
  }
  const key = keys[7]!.subarray(0, KEY_PREFIX_BYTES);
  for (const units of [8191, 8192, 8193]) {
    const tail = `"${Buffer.from(key).toString('hex')}"`;
    const text = 'x'.repeat(units - tail.length) + tail;
    t.equal(text.length, units);
    for (const sc of scanners) t.equal(sc.scan(text), 'key bytes (k7)', `a key at the end of ${units} units`);
  }
  const filter = addon!.mayHoldSecret!;
  const [heads16, heads32, used] = [new Uint8Array(8192), new Uint8Array(4 * 16), new Uint8Array(16)];
  const call = filter as unknown as (...a: unknown[]) => boolean;
  for (const bad of [
    () => call('x', heads16, heads32, used),
    () => call('x', heads16, heads32, used, 'yes'),
    () => call('x', heads16, new Uint32Array(16), used, false),
    () => filter(42 as unknown as string, heads16, heads32, used, false),
    () => filter('x', new Uint8Array(10), heads32, used, false),
    () => filter('x', heads16, new Uint8Array(4 * 15), new Uint8Array(15), false), // not a power of two
    () => filter('x', heads16, new Uint8Array(8), used, false), // table and flags disagree
  ]) {
    t.throws(bad, { name: 'TypeError', code: 'native_bad_call' });
  }
  t.equal(filter('{"a":"AAAAAAAAAAAAAAAAAAAAAAAA"}', heads16, heads32, used, false), false, 'no heads registered: no');
  // A table with no empty slot (the scanner never makes one) ends the probe instead of looping.
  heads16.fill(0xff);
  t.equal(filter('{"a":"AAAAAAAAAAAAAAAAAAAAAAAA"}', heads16, heads32.fill(1), used.fill(1), false), false, 'a full table: no');
});

t.test('trace writer output is a valid inspector trace', async (t) => {
  const { trace } = net();
  trace.actor('gateway', 'gateway');
  trace.state('gateway', 'up');
  trace.fault('crash', 'gateway', 'x');
  const { header, events } = decodeTrace(trace.encode());
  t.equal(header.source, 'sim:test');
  t.equal(header.seed, 1);
  t.same(events.map((e) => e.kind), ['actor', 'state', 'fault']);
});

t.test('a trace cut at its cap says so, and keeps what is written after finish()', async (t) => {
  let now = 0;
  const trace = new TraceWriter(TraceWriter.header('test', 1), () => now, 3);
  for (let i = 0; i < 5; i++) trace.fault('tick', undefined, String(now++));
  trace.finish();
  trace.fault('violation', 'some-invariant', 'why');
  t.equal(trace.droppedEvents, 2);
  const { events } = decodeTrace(trace.encode());
  t.same(
    events.map((e) => [e.seq, e.kind === 'fault' ? e.fault : e.kind]),
    [[0, 'tick'], [1, 'tick'], [2, 'tick'], [3, 'violation'], [4, TRUNCATED_FAULT]],
    'the first 3 events, the verdict, then the note, numbered without gaps',
  );
  t.match(events[4], { t: 5, detail: "2 events not recorded: the trace keeps the run's first 3" });

  // Under the cap the trace is exactly the events written, as before the cap existed.
  const whole = new TraceWriter(TraceWriter.header('test', 1), () => 0, 3);
  whole.fault('tick');
  whole.finish();
  whole.fault('violation', 'x');
  t.equal(whole.encode(), encodeTrace(whole.header, whole.events));
  t.equal(decodeTrace(whole.encode()).events.length, 2);
});

t.test('a run that fills its trace still ends it with the violation and the truncation note', async (t) => {
  // replay-tamper with this broken variant fails at seed 2 (teeth.test.ts); fill the trace first.
  const r = await runScenario('replay-tamper', 2, {
    __broken: 'non-transactional-decrypt',
    observe: (world) => {
      for (let i = 0; i < MAX_TRACE_EVENTS; i++) world.trace.fault('filler');
    },
  });
  t.equal(r.ok, false);
  const { events } = decodeTrace(r.trace);
  t.equal(events.length, MAX_TRACE_EVENTS + 2);
  t.match(events[MAX_TRACE_EVENTS], { kind: 'fault', fault: 'violation', target: r.violation!.invariant });
  t.match(events[MAX_TRACE_EVENTS + 1], { kind: 'fault', fault: TRUNCATED_FAULT, seq: MAX_TRACE_EVENTS + 1 });
});

t.test('the simulated AuditStore commits after its flush delay and a crash loses the rest', async (t) => {
  const { createHasher, verifyConsistency } = await import('../runtime/audit/merkle.ts');
  const { AuditLog } = await import('../runtime/audit/log.ts');
  const { MemoryTree } = await import('../runtime/audit/memory-tree.ts');
  const { SimAuditStore } = await import('./audit-store.ts');
  const { createHash } = await import('node:crypto');
  const hasher = createHasher((d) => new Uint8Array(createHash('sha256').update(d).digest()));
  const store = new SimAuditStore(hasher);
  const leaf = (i: number) => new TextEncoder().encode(`leaf ${i}`);
  const first = await store.append([leaf(0), leaf(1), leaf(2)]);
  t.same([first.first, first.size], [0, 3]);
  const lost = store.append([leaf(3)]);
  let settled = false;
  void lost.then(() => (settled = true));
  t.equal(store.crash(), 1, 'the uncommitted transaction is lost');
  await new Promise((r) => setTimeout(r, 20));
  t.equal(settled, false, 'its caller never hears back');
  t.equal((await store.head()).size, 3);
  await store.append([leaf(4), leaf(5)]);
  const reference = new MemoryTree(hasher);
  for (const i of [0, 1, 2, 4, 5]) reference.appendLeaf(leaf(i));
  const head = await store.head();
  t.same(head.root, reference.root(), 'same root as the reference tree');
  const log = new AuditLog(store, hasher);
  const proof = await log.consistencyProof(3, 5);
  t.ok(verifyConsistency(hasher, 3, 5, reference.rootAt(3), head.root, proof), 'proofs from the real AuditLog verify');
  t.same((await store.readLeaves(3, 10)).map((l) => l.index), [3, 4]);
  await t.rejects(store.append([]), { code: 'bad_batch' });
});

t.test('an agent retries a transient refusal with backoff, or later when the gateway says so', async (t) => {
  const refusal = (data?: unknown): RpcResponse => ({ jsonrpc: '2.0', id: 'c#1', error: { code: -32014, message: 'upstream_unavailable', data } });
  const talos = (retryAfterMs: unknown) => refusal({ talos: { reason: 'upstream_unavailable', retryAfterMs } });
  t.same([0, 1, 2, 3, 4, 5, 9].map((n) => retryWait(refusal(), n)), [50, 100, 200, 400, 800, 800, 800], 'backoff doubles up to its cap');
  t.equal(retryWait(talos(170), 0), 170, 'a later hint is waited for');
  t.equal(retryWait(talos(30), 2), 200, 'an earlier hint does not shorten the backoff');
  t.equal(retryWait(talos(60_000), 0), MAX_RETRY_AFTER_MS, 'a hint is capped like the backoff');
  for (const bad of ['170', -5, Number.NaN, null]) t.equal(retryWait(talos(bad), 0), 50, `a hint of ${String(bad)} is ignored`);
});
