import { createNobleProvider } from '../crypto/noble.ts';
import type { CryptoProvider } from '../crypto/provider.ts';
import { seededRandom } from '../crypto/seeded-random.ts';
import { toB64u } from '../encoding/base64url.ts';
import { fromUtf8, utf8 } from '../encoding/bytes.ts';
import { encodeEnvelope } from './envelope.ts';
import { makeIdentity, publishPrekeys } from './fixtures.ts';
import { acceptSession, initiateSession, openMessage, sealMessage, type Offer, type Session } from './session.ts';
import { lookupFrom } from './test-helpers.ts';

/**
 * Golden vectors for contracts/vectors/sessions.json: X3DH with and without a one-time prekey,
 * PQXDH (one-time ML-KEM key), and a 21-message ratchet transcript in both directions with
 * skipped and out-of-order deliveries. Everything comes from one seeded random stream, so any
 * provider given the same stream must produce the same bytes (sessions.test.ts checks both,
 * and re-derives SK, AD and sid from the raw secrets with the primitives alone).
 */
export const SESSION_VECTOR_SEED = 'talos/v1/session-vectors';
export const VECTOR_NOW = 1_767_225_600_000; // 2026-01-01T00:00:00Z
const b = toB64u;

function handshakeVector(crypto: CryptoProvider, name: string, options: { opk: boolean; pq: boolean }) {
  const alice = makeIdentity(crypto);
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { opks: options.opk ? 1 : 0, pq: options.pq, pqOpks: options.pq ? 1 : 0, exp: VECTOR_NOW + 86_400_000 });
  const offer: Offer = { bundle: pub.bundle };
  if (options.opk) offer.opk = pub.opks[0]!.json;
  if (options.pq) offer.pqOpk = pub.pqOpks[0]!.json;
  const a = initiateSession(crypto, alice, offer, VECTOR_NOW);
  const first = sealMessage(crypto, a, utf8(`first message of ${name}`));
  const accepted = acceptSession(crypto, bob, first.envelope, lookupFrom(pub, offer), VECTOR_NOW);
  const vector = {
    name,
    mode: a.mode,
    alice: { did: alice.did, sig_seed: b(alice.sig.secretKey), ik_dh_sk: b(alice.dh.secretKey), ik_dh: b(alice.dh.publicKey) },
    bob: { did: bob.did, sig_seed: b(bob.sig.secretKey), ik_dh_sk: b(bob.dh.secretKey), ik_dh: b(bob.dh.publicKey) },
    bundle: pub.bundle,
    spk_sk: b(pub.secrets.spk.secretKey),
    ...(options.opk ? { opk: pub.opks[0]!.json, opk_sk: b(pub.opks[0]!.secret.secretKey) } : {}),
    ...(options.pq ? { pq_opk: pub.pqOpks[0]!.json, pq_opk_seed: b(pub.pqOpks[0]!.secret.seed) } : {}),
    ad: b(a.ratchet.ad),
    sid: b(a.sid),
    first_plaintext: `first message of ${name}`,
    first_frame: encodeEnvelope(first.envelope),
  };
  return { vector, alice: first.session, bob: accepted.session };
}

/** Sends and deliveries of the transcript, in order: `a3` = Alice's 4th message. */
const SCRIPT: string[] = [
  'send a0', 'send a1', 'send a2', 'send a3', 'send a4',
  'deliver a0', 'deliver a2', 'deliver a1', 'deliver a4',
  'send b0', 'send b1', 'send b2', 'send b3',
  'deliver b1', 'deliver b0', 'deliver b3', 'deliver b2',
  'send a5', 'send a6', 'send a7',
  'deliver a3', 'deliver a7', 'deliver a5', 'deliver a6',
  'send b4', 'send b5', 'send b6',
  'deliver b6', 'deliver b4', 'deliver b5',
  'send a8', 'send a9', 'send a10',
  'deliver a8', 'deliver a9', 'deliver a10',
  'send b7', 'send b8', 'send b9',
  'deliver b9', 'deliver b8', 'deliver b7',
];

function transcript(crypto: CryptoProvider, start: { alice: Session; bob: Session }) {
  const parties: Record<'a' | 'b', Session> = { a: start.alice, b: start.bob };
  const frames = new Map<string, { frame: string; envelope: ReturnType<typeof sealMessage>['envelope'] }>();
  const steps: { op: 'send' | 'deliver'; id: string; plaintext: string; frame?: string; header?: string }[] = [];
  for (const line of SCRIPT) {
    const [op, id] = line.split(' ') as ['send' | 'deliver', string];
    const who = id[0] as 'a' | 'b';
    const text = `${who === 'a' ? 'Alice' : 'Bob'} message ${id.slice(1)}`;
    if (op === 'send') {
      const r = sealMessage(crypto, parties[who], utf8(text));
      parties[who] = r.session;
      const frame = encodeEnvelope(r.envelope);
      frames.set(id, { frame, envelope: r.envelope });
      steps.push({ op, id, plaintext: text, frame, header: b(r.envelope.header) });
    } else {
      const to = who === 'a' ? 'b' : 'a';
      const opened = openMessage(crypto, parties[to], frames.get(id)!.envelope, VECTOR_NOW);
      parties[to] = opened.session;
      steps.push({ op, id, plaintext: fromUtf8(opened.plaintext) });
    }
  }
  return steps;
}

export function sessionVectorsWith(crypto: CryptoProvider) {
  const x3dh = handshakeVector(crypto, 'x3dh-without-one-time-prekey', { opk: false, pq: false });
  const x3dhOpk = handshakeVector(crypto, 'x3dh-with-one-time-prekey', { opk: true, pq: false });
  const pqxdh = handshakeVector(crypto, 'pqxdh-with-one-time-prekeys', { opk: true, pq: true });
  return {
    description:
      'Talos sessions (PROTOCOL.md sections 5-6, contracts/SPEC.md section 5). Every value derives from the ' +
      `ChaCha20 stream seededRandom("${SESSION_VECTOR_SEED}") drawn in order; now = ${VECTOR_NOW}. ` +
      'The ratchet transcript continues the x3dh-with-one-time-prekey session.',
    seed: SESSION_VECTOR_SEED,
    now: VECTOR_NOW,
    handshakes: [x3dh.vector, x3dhOpk.vector, pqxdh.vector],
    ratchet: { session: x3dhOpk.vector.name, steps: transcript(crypto, x3dhOpk) },
  };
}

export function sessionVectors(): unknown {
  return sessionVectorsWith(createNobleProvider({ random: seededRandom(SESSION_VECTOR_SEED) }));
}
