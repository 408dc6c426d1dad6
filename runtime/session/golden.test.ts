import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCryptoProvider, PROVIDER_NAMES, seededRandom } from '../crypto/index.ts';
import { fromB64u } from '../encoding/base64url.ts';
import { concatBytes, fromUtf8, toHex, utf8 } from '../encoding/bytes.ts';
import { publicKeyFromDid } from '../identity/did.ts';
import { decodeEnvelope } from './envelope.ts';
import { SESSION_VECTOR_SEED, sessionVectorsWith } from './golden.ts';
import { decodeHeader, decrypt, initResponder } from './ratchet.ts';

type Vectors = ReturnType<typeof sessionVectorsWith>;
const file = join(dirname(fileURLToPath(import.meta.url)), '../../contracts/vectors/sessions.json');
const committed = JSON.parse(readFileSync(file, 'utf8')) as Vectors;

for (const name of PROVIDER_NAMES) {
  const crypto = createCryptoProvider({ name });

  t.test(`${name}: regenerating from the seed gives the committed vectors`, async (t) => {
    const again = sessionVectorsWith(createCryptoProvider({ name, random: seededRandom(SESSION_VECTOR_SEED) }));
    t.same(JSON.parse(JSON.stringify(again)), committed);
  });

  t.test(`${name}: SK, AD and sid re-derived from the raw secrets with the primitives alone`, async (t) => {
    t.equal(committed.handshakes.length, 3);
    t.same(committed.handshakes.map((h) => h.mode), ['x3dh', 'x3dh', 'pqxdh']);
    for (const h of committed.handshakes) {
      const frame = JSON.parse(h.first_frame) as Record<string, string | number>;
      const ikA = fromB64u(frame.ik as string, 32);
      const certInput = concatBytes(utf8('talos/v1/session-identity'), new Uint8Array([0]), utf8(`{"did":"${h.alice.did}","ik_dh":"${frame.ik}"}`));
      t.ok(crypto.ed25519Verify(publicKeyFromDid(h.alice.did), certInput, fromB64u(frame.ik_sig as string, 64)), `${h.name}: ik_sig`);
      const ek = fromB64u(frame.ek as string, 32);
      const spkSk = fromB64u(h.spk_sk, 32);
      const parts = [
        crypto.x25519(spkSk, ikA),
        crypto.x25519(fromB64u(h.bob.ik_dh_sk, 32), ek),
        crypto.x25519(spkSk, ek),
      ];
      const v = h as Record<string, unknown>;
      if (v.opk_sk) {
        t.equal(frame.opk_id, (v.opk as { id: number }).id);
        parts.push(crypto.x25519(fromB64u(v.opk_sk as string, 32), ek));
      } else t.equal(frame.opk_id, undefined);
      if (v.pq_opk_seed) {
        t.equal(frame.pq_id, (v.pq_opk as { id: number }).id);
        parts.push(crypto.mlkemDecapsulate(fromB64u(frame.pq_ct as string, 1088), fromB64u(v.pq_opk_seed as string, 64)));
      }
      const ikm = concatBytes(new Uint8Array(32).fill(0xff), ...parts);
      const info = h.mode === 'pqxdh' ? 'Talos_PQXDH_X25519_SHA-256_ML-KEM-768' : 'Talos_X3DH_X25519_SHA-256';
      const sk = crypto.hkdfSha256(ikm, new Uint8Array(32), utf8(info), 32);
      const sid = crypto.hkdfSha256(sk, new Uint8Array(32), utf8('Talos_SessionId'), 16);
      t.equal(toHex(sid), toHex(fromB64u(h.sid, 16)), `${h.name}: sid`);
      t.equal(frame.sid, h.sid);
      const ad = concatBytes(publicKeyFromDid(h.alice.did), ikA, publicKeyFromDid(h.bob.did), fromB64u(h.bob.ik_dh, 32));
      t.equal(toHex(ad), toHex(fromB64u(h.ad, 128)), `${h.name}: AD`);
      // The first message opens under RK = SK with Bob's signed prekey as his ratchet key.
      const env = decodeEnvelope(h.first_frame);
      const spk = { secretKey: spkSk, publicKey: crypto.x25519PublicKey(spkSk) };
      const opened = decrypt(crypto, initResponder(sk, ad, spk), env.header, env.ct, committed.now);
      t.equal(fromUtf8(opened.plaintext), h.first_plaintext, `${h.name}: first message`);
    }
  });

  t.test(`${name}: the transcript delivers every message once, out of order, in both directions`, async (t) => {
    const steps = committed.ratchet.steps;
    const sent = new Map(steps.filter((s) => s.op === 'send').map((s) => [s.id, s]));
    const delivered = steps.filter((s) => s.op === 'deliver');
    t.ok(sent.size >= 20, 'at least 20 messages');
    t.equal(delivered.length, sent.size, 'each delivered once');
    t.ok(new Set([...sent.keys()].map((id) => id[0])).size === 2, 'both directions');
    for (const d of delivered) t.equal(d.plaintext, sent.get(d.id)!.plaintext);
    const order = delivered.map((d) => d.id);
    t.ok(order.indexOf('a2') < order.indexOf('a1') && order.indexOf('a7') < order.indexOf('a5'), 'out of order');
    t.ok(order.indexOf('a4') < order.indexOf('a3'), 'a skipped message arrives after a ratchet step');
    // Header counters: N counts within a chain, PN names the previous chain's length.
    const hdr = (id: string) => decodeHeader(fromB64u(sent.get(id)!.header!, 40));
    t.same([hdr('a0').n, hdr('a4').n], [1, 5], 'Alice continues the chain of her first message');
    t.same([hdr('b0').n, hdr('b3').n, hdr('b0').pn], [0, 3, 0]);
    t.same([hdr('a5').n, hdr('a5').pn], [0, 6]);
  });
}
