import t from 'tap';
import { createCryptoProvider } from '../crypto/index.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';
import { isValid } from '../../contracts/validate.ts';
import { decodeEnvelope, encodeEnvelope } from './envelope.ts';
import { SessionError } from './errors.ts';
import { makeIdentity, publishPrekeys } from './fixtures.ts';
import { MAX_FRAME_BYTES, MAX_PLAINTEXT_BYTES } from './limits.ts';
import { initiateSession, sealClose, sealMessage } from './session.ts';
import { establishedPair } from './test-helpers.ts';

const NOW = 1_700_000_000_000;
const crypto = createCryptoProvider();
const malformed = { constructor: SessionError, code: 'frame_malformed' };

t.test('every frame type round-trips and matches its schema', async (t) => {
  const alice = makeIdentity(crypto);
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { pq: true, opks: 1, pqOpks: 1 });
  const s = initiateSession(crypto, alice, { bundle: pub.bundle, opk: pub.opks[0]!.json, pqOpk: pub.pqOpks[0]!.json }, NOW);
  const first = sealMessage(crypto, s, utf8('hi'));
  const { alice: a2 } = establishedPair(crypto, NOW);
  const frames = [
    ['prekey-message', first.envelope],
    ['message-envelope', sealMessage(crypto, { ...a2, handshake: null }, utf8('m')).envelope],
    ['session-close', sealClose(crypto, { ...a2, handshake: null }, 'idle').envelope],
  ] as const;
  for (const [schema, env] of frames) {
    const text = encodeEnvelope(env);
    t.ok(isValid(schema, JSON.parse(text)), `${schema} is valid`);
    const back = decodeEnvelope(text);
    t.same(back, env);
    t.equal(encodeEnvelope(back), text, 'one encoding');
    t.same(decodeEnvelope(utf8(text)), env, 'bytes decode the same');
  }
  const text = encodeEnvelope(first.envelope);
  const obj = JSON.parse(text) as Record<string, unknown>;
  t.throws(() => decodeEnvelope(JSON.stringify({ ...obj, extra: 1 })), malformed, 'closed schema');
  t.throws(() => decodeEnvelope(JSON.stringify({ ...obj, type: 'bogus' })), malformed);
  const { pq_id: _id, ...noPqId } = obj;
  t.throws(() => decodeEnvelope(JSON.stringify(noPqId)), malformed, 'pq_ct without pq_id');
  t.throws(() => decodeEnvelope(text.replace('"v":1', '"v":1,"v":1')), malformed, 'duplicate key');
  t.throws(() => decodeEnvelope(JSON.stringify({ ...obj, header: (obj.header as string).slice(0, -1) + 'B' })), malformed, 'non-canonical base64url');
  t.throws(() => decodeEnvelope('{'), malformed);
  t.throws(() => decodeEnvelope(JSON.stringify({ ...obj, ct: 'AAAA' })), malformed, 'shorter than a tag');
});

t.test('frame and plaintext limits', async (t) => {
  const { alice } = establishedPair(crypto, NOW, { pq: true });
  t.throws(() => decodeEnvelope('x'.repeat(MAX_FRAME_BYTES + 1)), { constructor: SessionError, code: 'frame_too_large' });
  t.throws(() => sealMessage(crypto, alice, new Uint8Array(MAX_PLAINTEXT_BYTES + 1)), { code: 'plaintext_too_large' });
  // The largest plaintext, on a first frame with the ML-KEM ciphertext, still fits in a frame.
  const big = sealMessage(crypto, alice, new Uint8Array(MAX_PLAINTEXT_BYTES).fill(7));
  t.equal(big.envelope.type, 'prekey');
  const text = encodeEnvelope(big.envelope);
  t.ok(text.length <= MAX_FRAME_BYTES);
  t.ok(bytesEqual(decodeEnvelope(text).ct, big.envelope.ct));
});

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

t.test('canonical fast path and strict path agree: non-canonical or mis-sized fields are refused, reordered frames accepted', async (t) => {
  const alice = makeIdentity(crypto);
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { pq: true, opks: 1 });
  const s = initiateSession(crypto, alice, { bundle: pub.bundle, opk: pub.opks[0]!.json }, NOW);
  const env = sealMessage(crypto, s, utf8('hello')).envelope;
  const text = encodeEnvelope(env);
  const obj = JSON.parse(text) as Record<string, string>;
  for (const field of ['sid', 'header', 'ct', 'ik', 'ik_sig', 'ek', 'pq_ct']) {
    const value = obj[field]!;
    // The last character of these lengths carries unused bits: setting one is non-canonical.
    if (value.length % 4 !== 0) {
      const last = B64U.indexOf(value.at(-1)!) | 1; // keeps the used bits, sets the lowest unused one
      t.throws(() => decodeEnvelope(JSON.stringify({ ...obj, [field]: value.slice(0, -1) + B64U[last] })), malformed, `${field}: trailing bits`);
    }
    if (field !== 'ct') t.throws(() => decodeEnvelope(JSON.stringify({ ...obj, [field]: value + 'AAAA' })), malformed, `${field}: 3 bytes longer`);
  }
  // Another key order and whitespace: not canonical text, but a valid frame (strict path).
  const { v, ...rest } = obj as unknown as Record<string, unknown>;
  const reordered = JSON.stringify({ ...rest, v }, null, 1);
  t.not(reordered, text);
  t.same(decodeEnvelope(reordered), env, 'same envelope from the strict path');
  t.same(decodeEnvelope(text), env, 'same envelope from the fast path');
});
