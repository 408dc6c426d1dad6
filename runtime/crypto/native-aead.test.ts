import t from 'tap';
import { createCipheriv, randomBytes, randomInt } from 'node:crypto';
import { addon, input, NATIVE_ENV, nativeScratchIsWiped } from './native-addon.ts';
import { nativeAead, nativeAeadStatus } from './native-aead.ts';
import { loopInWorker, runWithoutAddon } from './native-test-helpers.ts';
import { hex, toHexString, wycheproof } from './vector-files.ts';

/** Seals per thread in the two-thread test. */
const ROUNDS = 50_000;

// The native ChaCha20-Poly1305 path (native/aead.c) against the published vectors and
// node:crypto's own cipher, and its hygiene. The provider-level tests (known-answers,
// wycheproof) run the node provider, which takes this path whenever it is active.

t.test('the path is in use wherever the addon is (npm ci builds it; TALOS_NATIVE=0 turns it off)', async (t) => {
  t.equal(nativeAeadStatus.active, process.env[NATIVE_ENV] !== '0', nativeAeadStatus.reason ?? 'active');
});

const aead = nativeAead!;
const skip = !nativeAead && 'native path off';

/** The Wycheproof cases with a 96-bit nonce: [tcId, key, nonce, aad, msg, ct || tag, valid]. */
function chachaCases(): [number, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, boolean][] {
  const cases: ReturnType<typeof chachaCases> = [];
  for (const group of wycheproof('chacha20_poly1305_test.json').testGroups) {
    if (group['ivSize'] !== 96) continue;
    for (const c of group.tests) {
      const sealed = new Uint8Array([...hex(c['ct']), ...hex(c['tag'])]);
      cases.push([c.tcId, hex(c['key']), hex(c['iv']), hex(c['aad']), hex(c['msg']), sealed, c.result === 'valid']);
    }
  }
  return cases;
}

t.test('Wycheproof chacha20_poly1305_test.json: every case with a 96-bit nonce', { skip }, async (t) => {
  const cases = chachaCases();
  const wrong: number[] = [];
  for (const [id, key, nonce, aad, msg, sealed, valid] of cases) {
    const opened = aead.open(key, nonce, sealed, aad);
    const right = valid
      ? toHexString(aead.seal(key, nonce, msg, aad)) === toHexString(sealed) && opened !== undefined && toHexString(opened) === toHexString(msg)
      : opened === undefined;
    if (!right) wrong.push(id);
  }
  t.same(wrong, [], `${cases.length} cases`);
  t.ok(cases.length > 250 && cases.some((c) => !c[6]), 'valid and invalid cases alike');
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test("equal to node:crypto's cipher on random sizes (empty text and AAD included), the caller's arrays untouched", { skip }, async (t) => {
  let bad = 0;
  for (let i = 0; i < 300; i++) {
    const [key, nonce] = [randomBytes(32), randomBytes(12)];
    const text = randomBytes(i < 5 ? 0 : randomInt(0, 5000));
    const aad = randomBytes(i % 3 === 0 ? 0 : randomInt(0, 100));
    const before = [key, nonce, text, aad].map(toHexString);
    const wanted = nodeSeal(key, nonce, text, aad).toString('hex');
    const sealed = aead.seal(key, nonce, text, aad);
    const opened = aead.open(key, nonce, sealed, aad);
    const untouched = [key, nonce, text, aad].map(toHexString).every((h, j) => h === before[j]);
    if (toHexString(sealed) !== wanted || !opened || toHexString(opened) !== before[2] || !untouched) bad++;
  }
  t.equal(bad, 0, 'every sealed text equal, every open the plaintext, every input as it was');
  t.ok(nativeScratchIsWiped(), 'nothing left in the exchange buffers');
});

t.test('views at any offset (subarrays, pooled Buffers) and large texts read and give the same bytes', { skip }, async (t) => {
  const slab = randomBytes(4096); // Buffer.allocUnsafe's pool: small Buffers share a slab
  for (const size of [0, 1, 64, 1000, 1 << 20, 16 << 20]) {
    const text = size <= 1000 ? new Uint8Array(slab.buffer, slab.byteOffset + 7, size) : randomBytes(size).subarray(3);
    const aad = Buffer.from(randomBytes(37)).subarray(5);
    const [key, nonce] = [randomBytes(40).subarray(8), randomBytes(20).subarray(3, 15)];
    const sealed = aead.seal(key, nonce, text, aad);
    t.equal(Buffer.from(sealed).equals(nodeSeal(key, nonce, text, aad)), true, `${text.length} bytes sealed`);
    const inside = new Uint8Array(sealed.length + 9);
    inside.set(sealed, 9);
    t.equal(Buffer.from(aead.open(key, nonce, inside.subarray(9), aad)!).equals(text), true, `${text.length} bytes opened from a view`);
  }
  t.ok(nativeScratchIsWiped());
});

t.test('threads each seal and open through their own exchange buffers', { skip }, async (t) => {
  // Key and nonce cross in the module's buffers: with one pair shared, a thread sealing at the
  // same time would see the other's key.
  const { worker, next } = loopInWorker(
    'native-aead.ts',
    'nativeAead',
    "import { createCipheriv } from 'node:crypto';",
    `const key = new Uint8Array(32).fill(i & 0xff), nonce = new Uint8Array(12).fill(7), text = new Uint8Array([i & 0xff, 1]);
     const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
     const want = Buffer.concat([c.update(text), c.final(), c.getAuthTag()]);
     if (!want.equals(nativeAead.seal(key, nonce, text, new Uint8Array(0)))) bad++;`,
    ROUNDS,
  );
  t.equal(await next(), 'ready');
  const theirs = next();
  let bad = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const key = new Uint8Array(32).fill(255 - (i & 0xff));
    const nonce = new Uint8Array(12).fill(9);
    const text = new Uint8Array([i & 0xff, 2]);
    if (!Buffer.from(aead.open(key, nonce, nodeSeal(key, nonce, text, new Uint8Array(0)), new Uint8Array(0)) ?? []).equals(text)) bad++;
  }
  t.equal(bad, 0, 'this thread: every open right');
  t.equal(await theirs, 0, 'the worker: every seal right');
  await worker.terminate();
});

t.test('a forged tag, text or AAD opens to nothing, and the partial plaintext is wiped', { skip }, async (t) => {
  const [key, nonce, text, aad] = [randomBytes(32), randomBytes(12), randomBytes(200), randomBytes(20)];
  const sealed = aead.seal(key, nonce, text, aad);
  for (const [what, s, a] of [
    ['tag', flip(sealed, sealed.length - 1), aad],
    ['text', flip(sealed, 0), aad],
    ['aad', sealed, flip(aad, 3)],
  ] as const) {
    t.equal(aead.open(key, nonce, s, a), undefined, what);
    const out = new Uint8Array(text.length);
    input.set(key);
    input.set(nonce, 32);
    t.equal(addon!.chachaOpen!(input, a, s, out), false, `${what}: the addon says so`);
    t.ok(out.every((b) => b === 0), `${what}: the decrypted bytes written before the tag check are gone`);
  }
  t.ok(nativeScratchIsWiped(), 'key and nonce wiped');
});

t.test('bad calls to the addon are typed errors that leave no key behind', { skip }, async (t) => {
  const keyNonce = () => {
    input.set(randomBytes(44));
    return input;
  };
  const text = randomBytes(10);
  t.throws(() => addon!.chachaSeal!(keyNonce(), new Uint8Array(0), text, new Uint8Array(10)), { name: 'RangeError', code: 'native_bad_call' }, 'out of the wrong length');
  t.ok(nativeScratchIsWiped(), 'the key is wiped anyway');
  t.throws(() => addon!.chachaOpen!(keyNonce(), new Uint8Array(0), new Uint8Array(15), new Uint8Array(0)), { name: 'RangeError', code: 'native_bad_call' }, 'shorter than a tag');
  t.ok(nativeScratchIsWiped());
  t.throws(() => addon!.chachaSeal!(new Uint8Array(43), new Uint8Array(0), text, new Uint8Array(26)), { name: 'RangeError' }, 'key and nonce too short');
  t.throws(() => addon!.chachaSeal!(input, 'aad' as unknown as Uint8Array, text, new Uint8Array(26)), { name: 'TypeError', code: 'native_bad_call' }, 'not a Uint8Array');
});

t.test("TALOS_NATIVE=0: the node provider takes node:crypto's path, with the same answers on every Wycheproof case", async (t) => {
  // The fallback is what a Node without the addon runs: checked case by case, refusal codes included.
  const r = runWithoutAddon<{ answers: string[] }>(
    'native-aead.ts',
    'nativeAeadStatus',
    `const answers = [];
    for (const group of wycheproof('chacha20_poly1305_test.json').testGroups) for (const test of group.tests) {
      const [key, iv, aad] = [hex(test.key), hex(test.iv), hex(test.aad)];
      // An invalid case's ct || tag is a forgery: only opening it is asked.
      if (test.result === 'valid' || iv.length !== 12) answers.push(code(() => c.chachaSeal(key, iv, hex(test.msg), aad)));
      answers.push(code(() => c.chachaOpen(key, iv, hex(test.ct + test.tag), aad)));
    }
    return { answers };`,
  );
  t.same(r.status, { active: false, reason: `${NATIVE_ENV}=0` });
  const wanted: string[] = [];
  for (const group of wycheproof('chacha20_poly1305_test.json').testGroups) {
    for (const test of group.tests) {
      const ct = `${test['ct'] as string}${test['tag'] as string}`;
      if (group['ivSize'] !== 96) wanted.push('aead_bad_nonce', 'aead_bad_nonce');
      else if (test.result === 'valid') wanted.push(ct, test['msg'] as string);
      else wanted.push('aead_auth_failed');
    }
  }
  t.same(r.answers, wanted, 'every Wycheproof case sealed (the valid ones) and opened');
});

function nodeSeal(key: Uint8Array, nonce: Uint8Array, text: Uint8Array, aad: Uint8Array): Buffer {
  const c = createCipheriv('chacha20-poly1305', key, nonce, { authTagLength: 16 });
  if (aad.length > 0) c.setAAD(aad, { plaintextLength: text.length });
  return Buffer.concat([c.update(text), c.final(), c.getAuthTag()]);
}

function flip(bytes: Uint8Array, at: number): Uint8Array {
  const copy = new Uint8Array(bytes);
  copy[at]! ^= 1;
  return copy;
}
