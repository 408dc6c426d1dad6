import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { nativeX25519 } from '../runtime/crypto/native-x25519.ts';
import { seededRandom } from '../runtime/crypto/seeded-random.ts';
import { NATIVE_ENV } from '../runtime/crypto/native-addon.ts';
import { runScript } from '../runtime/crypto/native-test-helpers.ts';
import { AHEAD, keyPairsTaken, withKeyPairsAhead } from './key-pairs-ahead.ts';

const provider = createCryptoProvider({ name: 'node', random: seededRandom('unused') });
const reference = createCryptoProvider({ name: 'noble', random: seededRandom('unused') });

/** The pairs the stream `label` must give, in order, made by the pure-JavaScript provider. */
function expected(label: string, n: number) {
  const stream = seededRandom(label);
  return Array.from({ length: n }, () => reference.x25519KeyPair(stream(32)));
}

type Pair = { secretKey: Uint8Array; publicKey: Uint8Array };

/**
 * Takes pairs from `source`, each after a pause, until one comes from the helper (or `tries`
 * pairs went by): the helper starts, and wakes, in the background. Checks each against `want`.
 */
async function untilFromHelper(t: Test, take: () => Pair, want: Pair[], tries = 100): Promise<number> {
  const before = keyPairsTaken.fromHelper;
  let i = 0;
  while (keyPairsTaken.fromHelper === before && i < tries) {
    await sleep(50);
    const got = take();
    t.same([...got.secretKey, ...got.publicKey], [...want[i]!.secretKey, ...want[i]!.publicKey], `pair ${i}`);
    i++;
  }
  t.ok(keyPairsTaken.fromHelper > before, `the helper made a public key by pair ${i}`);
  return i;
}

t.test('pairs are the stream\'s, in order, made ahead by the helper thread', async (t) => {
  t.ok(nativeX25519, 'the native addon is in use (the helper needs it)');
  const ahead = withKeyPairsAhead(provider, seededRandom('pairs'), true);
  const want = expected('pairs', 500);
  const take = () => ahead.x25519KeyPair();
  const from = await untilFromHelper(t, take, want);
  const before = { ...keyPairsTaken };
  for (let i = from; i < want.length; i++) {
    // Bursts (the helper falls behind) and pauses (it catches up), as a run takes them.
    if (i % 40 === 0) await sleep(20);
    const got = take();
    t.same([...got.secretKey, ...got.publicKey], [...want[i]!.secretKey, ...want[i]!.publicKey], `pair ${i}`);
  }
  // How many came from the helper depends on the CPU it got (it runs at the lowest priority).
  const fromHelper = keyPairsTaken.fromHelper - before.fromHelper;
  t.equal(fromHelper + keyPairsTaken.madeHere - before.madeHere, want.length - from);
  t.ok(fromHelper > 0, `${fromHelper} of the last ${want.length - from} public keys came from the helper`);
});

t.test('without the helper, or after a later run took the ring over, the same pairs', async (t) => {
  const same = (got: { secretKey: Uint8Array; publicKey: Uint8Array }, want: typeof got) => t.same([...got.secretKey, ...got.publicKey], [...want.secretKey, ...want.publicKey]);
  const n = 3 * AHEAD;
  const alone = withKeyPairsAhead(provider, seededRandom('a'), false);
  for (const want of expected('a', n)) same(alone.x25519KeyPair(), want);

  const first = withKeyPairsAhead(provider, seededRandom('b'), true);
  await sleep(50);
  const second = withKeyPairsAhead(provider, seededRandom('c'), true); // takes the ring over
  await sleep(50);
  const madeHere = keyPairsTaken.madeHere;
  for (const want of expected('b', n)) same(first.x25519KeyPair(), want);
  t.equal(keyPairsTaken.madeHere - madeHere, n, 'the run that lost the ring makes its own public keys');
  for (const want of expected('c', n)) same(second.x25519KeyPair(), want);
});

t.test('a helper asleep after idling is woken by the next run', async (t) => {
  await sleep(500); // well past the helper's 100 polls of 1 ms: it sleeps until told
  const ahead = withKeyPairsAhead(provider, seededRandom('f'), true);
  await untilFromHelper(t, () => ahead.x25519KeyPair(), expected('f', 100));
});

t.test('a pair for a given secret, and every other operation, is the provider\'s own', async (t) => {
  const ahead = withKeyPairsAhead(provider, seededRandom('d'), true);
  const secret = new Uint8Array(32).fill(7);
  t.same(ahead.x25519KeyPair(secret), provider.x25519KeyPair(secret));
  t.same(ahead.sha256(new Uint8Array([1, 2])), provider.sha256(new Uint8Array([1, 2])));
  // The stream is untouched by a pair made from a given secret.
  const got = ahead.x25519KeyPair();
  t.same([...got.secretKey], [...expected('d', 1)[0]!.secretKey]);
});

/** Runs `body` in a child Node (fresh module state: its own ring) and returns what it logs, parsed. */
function inChild<T>(body: string, env: NodeJS.ProcessEnv = {}): T {
  const at = (file: string) => JSON.stringify(new URL(file, import.meta.url).href);
  const script = `
    const { createCryptoProvider } = await import(${at('../runtime/crypto/index.ts')});
    const { seededRandom } = await import(${at('../runtime/crypto/seeded-random.ts')});
    const { keyPairsTaken, startRingAt, withKeyPairsAhead } = await import(${at('./key-pairs-ahead.ts')});
    const provider = createCryptoProvider({ name: 'node', random: seededRandom('unused') });
    const hex = (b) => Buffer.from(b).toString('hex');
    ${body}`;
  return JSON.parse(runScript(script, env)) as T;
}

t.test('the ring\'s counters wrap past 2^31 with the same pairs, made by the helper', async (t) => {
  const { pairs, taken, late } = inChild<{ pairs: string[]; taken: typeof keyPairsTaken; late: string }>(`
    startRingAt(2 ** 31 - 8); // the first batch already crosses the Int32 wrap
    const ahead = withKeyPairsAhead(provider, seededRandom('wrap'), true);
    const pairs = [];
    const take = () => pairs.push(hex(ahead.x25519KeyPair().publicKey));
    // Until the helper (started in the background) has made one, then bursts and pauses.
    while (keyPairsTaken.fromHelper === 0 && pairs.length < 100) {
      await new Promise((r) => setTimeout(r, 50));
      take();
    }
    for (let i = 0; i < 200; i++) {
      if (i % 20 === 0) await new Promise((r) => setTimeout(r, 20));
      take();
    }
    let late = '';
    try { startRingAt(0); } catch (e) { late = e.message; }
    console.log(JSON.stringify({ pairs, taken: keyPairsTaken, late }));
  `);
  t.same(pairs, expected('wrap', pairs.length).map((p) => Buffer.from(p.publicKey).toString('hex')));
  t.ok(taken.fromHelper > 0, `${taken.fromHelper} of ${pairs.length} public keys from the helper, across the wrap`);
  t.equal(late, 'the ring has started already');
});

t.test('with the addon off (TALOS_NATIVE=0) there is no helper, and the pairs are the same', async (t) => {
  const { pairs, taken } = inChild<{ pairs: string[]; taken: typeof keyPairsTaken }>(`
    const ahead = withKeyPairsAhead(provider, seededRandom('e'), true);
    const pairs = Array.from({ length: 20 }, () => hex(ahead.x25519KeyPair().publicKey));
    console.log(JSON.stringify({ pairs, taken: keyPairsTaken }));
  `, { [NATIVE_ENV]: '0' });
  t.same(pairs, expected('e', 20).map((p) => Buffer.from(p.publicKey).toString('hex')));
  t.same(taken, { fromHelper: 0, madeHere: 20 });
});
