import { readFileSync } from 'node:fs';
import t from 'tap';
import { createCryptoProvider } from '../crypto/index.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';
import { isValid } from '../../contracts/validate.ts';
import { decodeEnvelope, encodeEnvelope, MSG_DID_PATTERN } from './envelope.ts';
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

t.test('the msg fast path checks DIDs with the schema\'s own pattern', async (t) => {
  const schema = JSON.parse(readFileSync(new URL('../../contracts/schemas/message-envelope.schema.json', import.meta.url), 'utf8')) as {
    properties: Record<string, { pattern?: string }>;
  };
  t.equal(MSG_DID_PATTERN.source, schema.properties['from']!.pattern);
  t.equal(MSG_DID_PATTERN.source, schema.properties['to']!.pattern);
});

t.test('fast paths accept and refuse exactly what the full path does (differential, mutated frames)', async (t) => {
  // A leading space keeps a frame valid JSON but never canonical, so it always takes the full
  // path: every mutated frame must give the same outcome both ways.
  const outcome = (frame: string) => {
    try {
      return { ok: decodeEnvelope(frame) };
    } catch (err) {
      return { code: (err as SessionError).code };
    }
  };
  const alice = makeIdentity(crypto);
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { pq: false, opks: 1 });
  const s = initiateSession(crypto, alice, { bundle: pub.bundle, opk: pub.opks[0]!.json }, NOW);
  const { alice: a2 } = establishedPair(crypto, NOW);
  const frames = [
    encodeEnvelope(sealMessage(crypto, { ...a2, handshake: null }, utf8('a message of some length')).envelope),
    encodeEnvelope(sealMessage(crypto, s, utf8('first')).envelope),
    encodeEnvelope(sealClose(crypto, { ...a2, handshake: null }, 'idle').envelope),
  ];
  // Beyond ASCII: 'é' (its low byte outside the alphabet) and U+0147, U+016C (low bytes 'G', 'l').
  const replacements = ['A', 'Q', 'z', '0', 'l', '_', '-', '+', '/', '=', '"', '\\', ' ', '}', 'é', '\u0147', '\u016c'];
  let compared = 0;
  for (const text of frames) {
    t.ok('ok' in outcome(text));
    const mutants = [text.slice(0, -1), text + ' ', text.slice(0, -2) + 'A"}', text.replace('"v":1', '"v":2'), text.replace('"msg"', '"close"')];
    for (let i = 0; i < text.length; i++) for (const r of replacements) mutants.push(text.slice(0, i) + r + text.slice(i + 1));
    for (const m of mutants) {
      const fast = outcome(m);
      const full = outcome(' ' + m);
      if (JSON.stringify(fast) !== JSON.stringify(full)) t.fail(`outcomes differ for a mutant at ${m.length}`);
      else compared++;
    }
  }
  t.ok(compared > 1000, `${compared} mutants give the same outcome both ways`);
});

t.test('a sid changed in place is encoded again, never sent stale', async (t) => {
  const { alice } = establishedPair(crypto, NOW);
  const envelope = sealMessage(crypto, { ...alice, handshake: null }, utf8('x')).envelope;
  const before = decodeEnvelope(encodeEnvelope(envelope)).sid;
  envelope.sid[0]! ^= 0xff;
  t.same(decodeEnvelope(encodeEnvelope(envelope)).sid, envelope.sid, 'the frame carries the bytes as they are now');
  t.notSame(before, envelope.sid);
});

t.test('a decoded ciphertext never shares memory with Node\'s Buffer pool', async (t) => {
  const { alice } = establishedPair(crypto, NOW);
  const text = encodeEnvelope(sealMessage(crypto, { ...alice, handshake: null }, new Uint8Array(1000)).envelope);
  const marker = 'talos-pool-marker-' + 'q'.repeat(16);
  const pooled = Buffer.from(marker); // lands in Node's shared pool, as other code's data does
  const ct = decodeEnvelope(text).ct;
  t.not(ct.buffer, pooled.buffer, 'another ArrayBuffer than the pool');
  t.notOk(Buffer.from(ct.buffer).includes(marker), 'the pool\'s bytes are not reachable through ct.buffer');
});
