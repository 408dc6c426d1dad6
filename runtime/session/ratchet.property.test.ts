import t from 'tap';
import fc from 'fast-check';
import { providers } from '../crypto/index.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';
import { SessionError } from './errors.ts';
import type { Envelope } from './envelope.ts';
import { decrypt } from './ratchet.ts';
import { openMessage, sealMessage, type Session } from './session.ts';
import { encodeSession } from './state-codec.ts';
import { establishedPair } from './test-helpers.ts';

const NOW = 1_700_000_000_000;
const RUNS = 1000;

type Op =
  | { kind: 'send'; side: 0 | 1 }
  | { kind: 'deliver'; side: 0 | 1; pick: number }
  | { kind: 'duplicate'; side: 0 | 1; pick: number }
  | { kind: 'drop'; side: 0 | 1; pick: number };

const side = fc.constantFrom<0 | 1>(0, 1);
const pick = fc.nat({ max: 1000 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('send' as const), side }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('deliver' as const), side, pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), side, pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('drop' as const), side, pick }) },
);

interface InFlight {
  envelope: Envelope;
  plaintext: Uint8Array;
}

for (const crypto of providers()) {
  // One handshake per provider: sessions are immutable values, so every run starts from it.
  const start = establishedPair(crypto, NOW);

  t.test(`${crypto.name}: any interleaving with drops, duplicates and reorders delivers exactly once`, async (t) => {
    let counter = 0;
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const sessions: [Session, Session] = [start.alice, start.bob];
        // toward[i]: frames on their way TO party i; delivered[i]: frames party i already opened.
        const toward: [InFlight[], InFlight[]] = [[], []];
        const delivered: [InFlight[], InFlight[]] = [[], []];
        for (const o of ops) {
          const to = (1 - o.side) as 0 | 1;
          if (o.kind === 'send') {
            const plaintext = utf8(`m${counter++}`);
            const r = sealMessage(crypto, sessions[o.side], plaintext);
            sessions[o.side] = r.session;
            toward[to].push({ envelope: r.envelope, plaintext });
          } else if (o.kind === 'deliver' || o.kind === 'drop') {
            const q = toward[o.side];
            if (q.length === 0) continue;
            const [m] = q.splice(o.pick % q.length, 1);
            if (o.kind === 'drop') continue;
            const opened = openMessage(crypto, sessions[o.side], m!.envelope, NOW);
            if (!bytesEqual(opened.plaintext, m!.plaintext)) return false;
            sessions[o.side] = opened.session;
            delivered[o.side].push(m!);
          } else {
            const seen = delivered[o.side];
            if (seen.length === 0) continue;
            const m = seen[o.pick % seen.length]!;
            const before = encodeSession(sessions[o.side]);
            let refused = false;
            try {
              openMessage(crypto, sessions[o.side], m.envelope, NOW);
            } catch (err) {
              refused = err instanceof SessionError;
            }
            if (!refused || encodeSession(sessions[o.side]) !== before) return false;
          }
        }
        // Whatever is still in flight arrives now, in any order: all of it decrypts.
        for (const s of [0, 1] as const) {
          for (const m of toward[s].reverse()) {
            const opened = openMessage(crypto, sessions[s], m.envelope, NOW);
            if (!bytesEqual(opened.plaintext, m.plaintext)) return false;
            sessions[s] = opened.session;
          }
        }
        return true;
      }),
      { numRuns: RUNS },
    );
    t.pass(`${RUNS} interleavings`);
  });

  t.test(`${crypto.name}: flipping any bit of header, ciphertext or associated data is refused, state unchanged`, async (t) => {
    // A few receiver states to attack: fresh, mid-chain with skipped keys, after a DH step.
    let { alice, bob } = start;
    const targets: { receiver: Session; envelope: Envelope }[] = [];
    let r = sealMessage(crypto, alice, utf8('a'));
    alice = r.session;
    targets.push({ receiver: bob, envelope: r.envelope });
    r = sealMessage(crypto, alice, utf8('b'));
    alice = r.session;
    const skippedOne = r.envelope;
    r = sealMessage(crypto, alice, utf8('c'));
    alice = r.session;
    bob = openMessage(crypto, bob, r.envelope, NOW).session;
    targets.push({ receiver: bob, envelope: skippedOne }); // decrypts through a stored skipped key
    const back = sealMessage(crypto, bob, utf8('d'));
    targets.push({ receiver: alice, envelope: back.envelope }); // needs a DH ratchet step
    for (const tg of targets) {
      // Sanity: unmodified, it opens.
      openMessage(crypto, tg.receiver, tg.envelope, NOW);
    }
    const where = fc.constantFrom<'header' | 'ct' | 'ad'>('header', 'ct', 'ad');
    fc.assert(
      fc.property(fc.nat({ max: targets.length - 1 }), where, fc.nat(), fc.nat({ max: 7 }), (ti, w, pos, bit) => {
        const { receiver, envelope } = targets[ti]!;
        const state = receiver.ratchet;
        const before = encodeSession(receiver);
        let header = envelope.header;
        let ct = envelope.ct;
        let ratchet = state;
        if (w === 'header') {
          header = header.slice();
          header[pos % header.length]! ^= 1 << bit;
        } else if (w === 'ct') {
          ct = ct.slice();
          ct[pos % ct.length]! ^= 1 << bit;
        } else {
          const ad = state.ad.slice();
          ad[pos % ad.length]! ^= 1 << bit;
          ratchet = { ...state, ad };
        }
        let refused = false;
        try {
          decrypt(crypto, ratchet, header, ct, NOW);
        } catch (err) {
          refused = err instanceof SessionError;
        }
        return refused && encodeSession(receiver) !== '' && encodeSession(receiver) === before;
      }),
      { numRuns: RUNS },
    );
    t.pass(`${RUNS} bit flips`);
  });
}
