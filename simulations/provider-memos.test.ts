import t from 'tap';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { withMethods, type CryptoProvider } from '../runtime/crypto/provider.ts';
import { seededRandom } from '../runtime/crypto/seeded-random.ts';
import { answersGivenAgain, rememberAnswers, UNANSWERED_HALVES_LIMIT, VERIFY_MEMO_MESSAGE_BYTES } from './provider-memos.ts';
import { runScenario } from './runner.ts';

/** A provider that counts what is asked of it, and the memo layer over it. */
function counted(label: string) {
  const base = createCryptoProvider({ name: 'node', random: seededRandom(label) });
  const asked = { verify: 0, key: 0, dh: 0 };
  const counting = withMethods(base, {
    ed25519Verify: (...a: Parameters<CryptoProvider['ed25519Verify']>) => (asked.verify++, base.ed25519Verify(...a)),
    ed25519IsValidPublicKey: (k: Uint8Array) => (asked.key++, base.ed25519IsValidPublicKey(k)),
    x25519: (s: Uint8Array, p: Uint8Array) => (asked.dh++, base.x25519(s, p)),
  });
  return { base, asked, memo: rememberAnswers(counting) };
}

t.test('remembered verdicts are the provider\'s own, asked of it once per input', async (t) => {
  const { base, asked, memo } = counted('memo');
  const seed = new Uint8Array(32).fill(9);
  const { publicKey } = base.ed25519KeyPair(seed);
  const message = new Uint8Array([1, 2, 3]);
  const signature = base.ed25519Sign(seed, message);
  const other = new Uint8Array([1, 2, 4]);
  const forged = signature.slice();
  forged[0]! ^= 1;
  const cases: [Uint8Array, Uint8Array, Uint8Array][] = [
    [publicKey, message, signature],
    [publicKey, other, signature], // the same signature on another message
    [publicKey, message, forged],
    [publicKey.subarray(0, 31), message, signature],
    [publicKey, new Uint8Array([1]), signature.subarray(0, 63)],
    // The same bytes as the first case, the boundary between signature and message moved.
    [publicKey, Buffer.concat([signature.subarray(63), message]), signature.subarray(0, 63)],
  ];
  for (let round = 0; round < 3; round++) {
    for (const [p, m, s] of cases) t.equal(memo.ed25519Verify(p, m, s), base.ed25519Verify(p, m, s));
    t.equal(memo.ed25519IsValidPublicKey(publicKey), true);
    t.equal(memo.ed25519IsValidPublicKey(new Uint8Array(32)), base.ed25519IsValidPublicKey(new Uint8Array(32)));
  }
  t.same(asked, { verify: cases.length, key: 2, dh: 0 }, 'each input asked of the provider once');
  // Not bytes, or a message past VERIFY_MEMO_MESSAGE_BYTES: never remembered, always the provider's answer.
  const long = new Uint8Array(VERIFY_MEMO_MESSAGE_BYTES + 1);
  const longSignature = base.ed25519Sign(seed, long);
  for (let round = 0; round < 2; round++) {
    t.equal(memo.ed25519Verify('x' as unknown as Uint8Array, message, signature), false);
    t.equal(memo.ed25519Verify(publicKey, long, longSignature), true);
  }
  t.equal(asked.verify, cases.length + 4);
});

t.test('a signature made here, with a key pair made here, is known to verify', async (t) => {
  const { base, asked, memo } = counted('signed');
  const seed = new Uint8Array(32).fill(3);
  const { publicKey } = memo.ed25519KeyPair(seed);
  const message = new TextEncoder().encode('checkpoint 7');
  const signature = memo.ed25519Sign(seed, message);
  t.same(signature, base.ed25519Sign(seed, message), 'the provider\'s signature');
  t.equal(memo.ed25519Verify(publicKey, message, signature), true);
  t.equal(asked.verify, 0, 'not computed');
  t.equal(memo.ed25519Verify(publicKey, new TextEncoder().encode('checkpoint 8'), signature), false, 'another message is checked');
  t.equal(asked.verify, 1);
  // A key known only through ed25519PublicKey counts too; a seed never seen here does not.
  const seen = new Uint8Array(32).fill(4);
  const seenKey = memo.ed25519PublicKey(seen);
  t.equal(memo.ed25519Verify(seenKey, message, memo.ed25519Sign(seen, message)), true);
  t.equal(asked.verify, 1);
  const unseen = new Uint8Array(32).fill(5);
  t.equal(memo.ed25519Verify(base.ed25519PublicKey(unseen), message, memo.ed25519Sign(unseen, message)), true);
  t.equal(asked.verify, 2, 'computed: its public key was not made here');
});

t.test('an X25519 shared secret computed by one side is given to the other', async (t) => {
  const { base, asked, memo } = counted('dh');
  const alice = memo.x25519KeyPair();
  const bob = memo.x25519KeyPair();
  const expected = base.x25519(alice.secretKey, bob.publicKey);
  const first = memo.x25519(alice.secretKey, bob.publicKey);
  t.same(first, expected);
  first.fill(0); // callers wipe their copy once used
  t.same(memo.x25519(bob.secretKey, alice.publicKey), expected, 'the other side gets the same secret');
  t.equal(asked.dh, 1, 'computed once');
  t.same(memo.x25519(bob.secretKey, alice.publicKey), expected, 'asked a third time: computed again');
  t.equal(asked.dh, 2);

  // Pairs given their secret, and public keys asked for, count as made here.
  const carol = memo.x25519KeyPair(new Uint8Array(32).fill(7));
  const daveSecret = new Uint8Array(32).fill(8);
  const dave = { secretKey: daveSecret, publicKey: memo.x25519PublicKey(daveSecret) };
  asked.dh = 0;
  t.same(memo.x25519(carol.secretKey, dave.publicKey), base.x25519(carol.secretKey, dave.publicKey));
  t.same(memo.x25519(dave.secretKey, carol.publicKey), base.x25519(carol.secretKey, dave.publicKey));
  t.equal(asked.dh, 1);

  // A peer key not made here, and a secret not known here, are computed every time.
  const stranger = base.x25519KeyPair();
  asked.dh = 0;
  t.same(memo.x25519(alice.secretKey, stranger.publicKey), base.x25519(alice.secretKey, stranger.publicKey));
  t.same(memo.x25519(stranger.secretKey, alice.publicKey), base.x25519(alice.secretKey, stranger.publicKey));
  t.equal(asked.dh, 2);
  // The same point with u's top bit set (RFC 7748 masks it) is another key string: computed.
  const masked = bob.publicKey.slice();
  masked[31]! |= 0x80;
  t.same(memo.x25519(alice.secretKey, masked), expected);
  t.equal(asked.dh, 3);

  // A low-order key throws as the provider does, and nothing is remembered.
  const lowOrder = new Uint8Array(32);
  for (let i = 0; i < 2; i++) t.throws(() => memo.x25519(alice.secretKey, lowOrder), { code: 'x25519_low_order' });
  t.equal(asked.dh, 5);

  // A secret wiped in place is no longer the pair's: computed, with the wiped bytes.
  const erin = memo.x25519KeyPair();
  memo.x25519(bob.secretKey, erin.publicKey);
  erin.secretKey.fill(0);
  asked.dh = 0;
  t.same(memo.x25519(erin.secretKey, bob.publicKey), base.x25519(new Uint8Array(32), bob.publicKey));
  t.equal(asked.dh, 1);
});

t.test('unanswered halves are bounded: the oldest is forgotten first', async (t) => {
  const { asked, memo } = counted('halves');
  const hub = memo.x25519KeyPair();
  const peers = Array.from({ length: UNANSWERED_HALVES_LIMIT + 1 }, () => memo.x25519KeyPair());
  for (const p of peers) memo.x25519(hub.secretKey, p.publicKey);
  asked.dh = 0;
  memo.x25519(peers.at(-1)!.secretKey, hub.publicKey);
  t.equal(asked.dh, 0, 'the newest half is given');
  memo.x25519(peers[0]!.secretKey, hub.publicKey);
  t.equal(asked.dh, 1, 'the oldest was forgotten: computed');
});

t.test('a detached array gets the provider\'s own answer, not an exception of the layer', async (t) => {
  const { base, memo } = counted('detached');
  const detached = () => {
    const a = new Uint8Array(64);
    structuredClone(a.buffer, { transfer: [a.buffer] });
    return a;
  };
  const seed = new Uint8Array(32).fill(2);
  const { publicKey } = memo.ed25519KeyPair(seed);
  const message = new Uint8Array([5]);
  t.equal(memo.ed25519Verify(publicKey, message, detached()), base.ed25519Verify(publicKey, message, detached()));
  t.equal(memo.ed25519IsValidPublicKey(detached()), base.ed25519IsValidPublicKey(detached()));
  const pair = memo.x25519KeyPair();
  const code = (f: () => unknown) => {
    try {
      f();
      return 'no error';
    } catch (err) {
      return (err as { code?: string }).code;
    }
  };
  t.equal(code(() => memo.x25519(pair.secretKey, detached())), code(() => base.x25519(pair.secretKey, detached())));
});

t.test('a run\'s trace is the same with or without the remembered answers', async (t) => {
  const plain = createCryptoProvider({ name: 'node' });
  for (const name of ['load-spike', 'key-compromise']) {
    const before = answersGivenAgain.sharedSecrets;
    const remembered = await runScenario(name, 5);
    t.ok(answersGivenAgain.sharedSecrets > before, 'the run\'s provider gave shared secrets again');
    let computed = 0;
    const everyTime = await runScenario(name, 5, {
      observe: (world) => {
        // The checks and DHs the layer could answer from memory, computed every time instead.
        world.crypto.x25519 = (s, p) => (computed++, plain.x25519(s, p));
        world.crypto.ed25519Verify = (p, m, s) => (computed++, plain.ed25519Verify(p, m, s));
        world.crypto.ed25519IsValidPublicKey = (p) => (computed++, plain.ed25519IsValidPublicKey(p));
      },
    });
    t.ok(remembered.ok && computed > 0);
    t.equal(everyTime.traceHash, remembered.traceHash, `${name}: same trace`);
  }
});
