import t from 'tap';
import fc from 'fast-check';
import { createHmac, hkdfSync } from 'node:crypto';
import { NATIVE_ENV, NATIVE_SCRATCH_BYTES, nativeScratchIsWiped } from './native-addon.ts';
import { nativeKdf, nativeKdfStatus } from './native-kdf.ts';
import { loopInWorker, runWithoutAddon } from './native-test-helpers.ts';
import { hex, toHexString, wycheproof } from './vector-files.ts';

// The native HMAC/HKDF path (native/kdf.c) against the published vectors and node:crypto, its
// limits, its hygiene, one thread beside another, and the JavaScript path it falls back to.

t.test('the addon is built and in use (npm ci builds it; TALOS_NATIVE=0 is the only way out)', async (t) => {
  if (process.env[NATIVE_ENV] === '0') {
    t.equal(nativeKdfStatus.active, false);
    return;
  }
  t.same(nativeKdfStatus, { active: true }, nativeKdfStatus.reason ?? 'active');
});

const kdf = nativeKdf!;
const nodeHmac = (key: Uint8Array, msg: Uint8Array) => toHexString(createHmac('sha256', key).update(msg).digest());

t.test('Wycheproof HMAC-SHA-256 and HKDF-SHA-256, every vector the path takes', { skip: !nativeKdf && 'native path off' }, async (t) => {
  let hmacs = 0;
  for (const group of wycheproof('hmac_sha256_test.json').testGroups) {
    for (const test of group.tests) {
      const mac = kdf.hmacEach(hex(test['key']), [hex(test['msg'])]);
      if (!mac) continue; // a key over one block: another path
      hmacs++;
      const tag = toHexString(mac[0]!).slice(0, (group['tagSize'] as number) / 4);
      t.equal(tag === test['tag'], test.result === 'valid', `tcId ${test.tcId}`);
    }
  }
  let hkdfs = 0;
  for (const group of wycheproof('hkdf_sha256_test.json').testGroups) {
    for (const test of group.tests) {
      if (test.result === 'invalid') continue; // lengths past 255 * 32: refused before any path
      const okm = kdf.hkdf(hex(test['ikm']), hex(test['salt']), hex(test['info']), test['size'] as number);
      if (!okm) continue;
      hkdfs++;
      t.equal(toHexString(okm), test['okm'], `tcId ${test.tcId}`);
    }
  }
  t.ok(hmacs > 100 && hkdfs > 50, `${hmacs} HMAC and ${hkdfs} HKDF vectors`);
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test('equal to node:crypto on random inputs', { skip: !nativeKdf && 'native path off' }, async (t) => {
  const bytes = (max: number) => fc.uint8Array({ maxLength: max });
  fc.assert(
    fc.property(bytes(64), fc.integer({ min: 1, max: 8 }), fc.integer({ min: 0, max: 100 }), fc.integer({ min: 0, max: 1 << 30 }), (key, count, each, seed) => {
      const messages = Array.from({ length: count }, (_, i) => Uint8Array.from({ length: each }, (_, j) => (seed + i * 31 + j * 7) & 0xff));
      const macs = kdf.hmacEach(key, messages)!;
      return macs.length === count && macs.every((m, i) => toHexString(m) === nodeHmac(key, messages[i]!));
    }),
    { numRuns: 1000 },
  );
  fc.assert(
    fc.property(bytes(300), bytes(64), bytes(300), fc.integer({ min: 1, max: NATIVE_SCRATCH_BYTES }), (ikm, salt, info, length) => {
      const okm = kdf.hkdf(ikm, salt, info, length)!;
      return toHexString(okm) === Buffer.from(hkdfSync('sha256', ikm, salt, info, length)).toString('hex');
    }),
    { numRuns: 1000 },
  );
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test('inputs outside the path are declined (undefined), never truncated', { skip: !nativeKdf && 'native path off' }, async (t) => {
  const b = (n: number) => new Uint8Array(n);
  t.equal(kdf.hmacEach(b(65), [b(1)]), undefined, 'a key over one block');
  t.equal(kdf.hmacEach(b(32), [b(1), b(2)]), undefined, 'messages of different lengths');
  t.equal(kdf.hmacEach(b(32), [b(NATIVE_SCRATCH_BYTES)]), undefined, 'more input than the buffer');
  t.equal(kdf.hkdf(b(32), b(65), b(0), 32), undefined, 'a salt over one block');
  t.equal(kdf.hkdf(b(NATIVE_SCRATCH_BYTES), b(1), b(0), 32), undefined, 'more input than the buffer');
  t.equal(kdf.hkdf(b(32), b(0), b(0), NATIVE_SCRATCH_BYTES + 1), undefined, 'more output than the buffer');
  t.same(kdf.hmacEach(b(32), []), [], 'no messages, no MACs');
});

t.test('two instances of the loader in one thread each get their own, right results', { skip: !nativeKdf && 'native path off' }, async (t) => {
  // A second copy of the loader (another URL for the same file, as a require() beside an
  // import, or a bundler, can make) gets the same addon and buffers of its own; neither
  // changes what the other computes.
  const second = (await import(new URL('./native-addon.ts?second-instance', import.meta.url).href)) as typeof import('./native-addon.ts');
  t.not(second.input, (await import('./native-addon.ts')).input, 'a second instance, with its own buffers');
  const key = new Uint8Array(32).fill(9);
  for (let i = 0; i < 100; i++) {
    const msg = Uint8Array.of(i);
    t.equal(toHexString(kdf.hmacEach(key, [msg])![0]!), nodeHmac(key, msg));
    second.put(msg, second.put(key, 0));
    second.addon!.hmacEach(second.input, second.output, key.length, 1, msg.length);
    t.equal(toHexString(second.take(0, 32)), nodeHmac(key, msg));
  }
  t.ok(nativeScratchIsWiped() && second.nativeScratchIsWiped(), 'both instances left their buffers wiped');
});

t.test('an all-zero salt of any length takes the precomputed schedule and gives the same bytes', { skip: !nativeKdf && 'native path off' }, async (t) => {
  const ikm = new Uint8Array(32).fill(5);
  const info = new Uint8Array(17).fill(1);
  for (const n of [0, 1, 31, 32, 64]) {
    const salt = new Uint8Array(n);
    t.equal(toHexString(kdf.hkdf(ikm, salt, info, 44)!), Buffer.from(hkdfSync('sha256', ikm, salt, info, 44)).toString('hex'), `${n} zero bytes`);
    salt[n - 1] = 1;
    if (n > 0) t.equal(toHexString(kdf.hkdf(ikm, salt, info, 44)!), Buffer.from(hkdfSync('sha256', ikm, salt, info, 44)).toString('hex'), `${n} bytes, last one set`);
  }
});

t.test('threads do not share the exchange buffers', { skip: !nativeKdf && 'native path off' }, async (t) => {
  // Each thread binds its own pair: with one shared pair, two loops running at the same time
  // would read each other's bytes. The worker says when it is loaded; then both loop at once.
  const rounds = 100_000;
  const { worker, next } = loopInWorker(
    'native-kdf.ts',
    'nativeKdf',
    "import { createHmac } from 'node:crypto';",
    `const key = new Uint8Array(32).fill(i & 0xff), msg = new Uint8Array([1, i & 0xff]);
     const mac = Buffer.from(nativeKdf.hmacEach(key, [msg])[0]).toString('hex');
     if (mac !== createHmac('sha256', key).update(msg).digest('hex')) bad++;`,
    rounds,
  );
  t.equal(await next(), 'ready');
  let bad = 0;
  for (let i = 0; i < rounds; i++) {
    const key = new Uint8Array(32).fill(255 - (i & 0xff));
    const msg = new Uint8Array([2, i & 0xff]);
    if (toHexString(kdf.hmacEach(key, [msg])![0]!) !== nodeHmac(key, msg)) bad++;
  }
  t.equal(bad, 0, 'main thread: every MAC right');
  t.equal(await next(), 0, 'worker thread: every MAC right');
  await worker.terminate();
});

t.test('TALOS_NATIVE=0: the node provider takes the JavaScript path and gives the same bytes', async (t) => {
  const r = runWithoutAddon<{ macs: string[]; okm: string }>(
    'native-kdf.ts',
    'nativeKdfStatus',
    `const key = new Uint8Array(32).fill(7);
    return { macs: c.hmacSha256Each(key, [Uint8Array.of(1), Uint8Array.of(2)]).map(toHexString), okm: toHexString(c.hkdfSha256(key, new Uint8Array(32), new Uint8Array(17), 44)) };`,
  );
  t.same(r.status, { active: false, reason: `${NATIVE_ENV}=0` });
  const key = new Uint8Array(32).fill(7);
  t.same(r.macs, [nodeHmac(key, Uint8Array.of(1)), nodeHmac(key, Uint8Array.of(2))]);
  t.equal(r.okm, Buffer.from(hkdfSync('sha256', key, new Uint8Array(32), new Uint8Array(17), 44)).toString('hex'));
});
