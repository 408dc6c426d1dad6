import t from 'tap';
import { providers } from '../crypto/index.ts';
import { fromUtf8, utf8 } from '../encoding/bytes.ts';
import { SessionError } from './errors.ts';
import { MAX_SKIP, MAX_STORED_SKIPPED, SKIPPED_KEY_MAX_AGE_MS } from './limits.ts';
import { decrypt, encodeHeader, encrypt, type RatchetState } from './ratchet.ts';
import { openMessage, sealMessage, type Session } from './session.ts';
import { encodeSession } from './state-codec.ts';
import { establishedPair } from './test-helpers.ts';
import type { Envelope } from './envelope.ts';

const NOW = 1_700_000_000_000;
const code = (code: string) => ({ constructor: SessionError, code });

function sendN(crypto: Parameters<typeof sealMessage>[0], s: Session, n: number, tag: string) {
  const out: Envelope[] = [];
  for (let i = 0; i < n; i++) {
    const r = sealMessage(crypto, s, utf8(`${tag}${i}`));
    s = r.session;
    out.push(r.envelope);
  }
  return { session: s, envelopes: out };
}

/** Encrypts with a sending chain advanced to index `n` (only the counter; for limit tests). */
function sealAt(crypto: Parameters<typeof encrypt>[0], s: RatchetState, n: number, plaintext: string) {
  let st = s;
  for (let i = 0; i < n; i++) st = encrypt(crypto, st, new Uint8Array(0)).state;
  return encrypt(crypto, st, utf8(plaintext));
}

for (const crypto of providers()) {
  t.test(`${crypto.name}: MAX_SKIP and refusals leave the state as it was`, async (t) => {
    const { alice, bob } = establishedPair(crypto, NOW);
    const before = encodeSession(bob);
    const far = sealAt(crypto, alice.ratchet, MAX_SKIP + 1, 'far');
    t.throws(() => decrypt(crypto, bob.ratchet, far.header, far.ciphertext, NOW), code('too_many_skipped'));
    t.equal(encodeSession(bob), before);
    const edge = sealAt(crypto, alice.ratchet, MAX_SKIP, 'edge'); // exactly MAX_SKIP skipped: accepted
    const ok = decrypt(crypto, bob.ratchet, edge.header, edge.ciphertext, NOW);
    t.equal(fromUtf8(ok.plaintext), 'edge');
    t.equal(ok.state.skipped.length, MAX_SKIP);
    t.equal(encodeSession(bob), before, 'the input state was not mutated');
    // Bad header encodings.
    const badKey = edge.header.slice();
    badKey[31] = 0xff; // top bit set: non-canonical
    t.throws(() => decrypt(crypto, bob.ratchet, badKey, edge.ciphertext, NOW), code('bad_header'));
    t.throws(() => decrypt(crypto, bob.ratchet, edge.header.subarray(0, 39), edge.ciphertext, NOW), code('bad_header'));
    t.equal(encodeSession(bob), before);
  });

  t.test(`${crypto.name}: before the first reply, a header naming the responder's signed prekey is refused`, async (t) => {
    // Alice has sent her first message and heard nothing back: DHr is Bob's signed prekey (public,
    // in his bundle) and she has no receiving chain. Anyone who saw the sid can frame that key.
    const { alice, bob } = establishedPair(crypto, NOW);
    const spk = alice.ratchet.dhr!;
    t.equal(alice.ratchet.ckr, null);
    const before = encodeSession(alice);
    for (const type of ['msg', 'close'] as const) {
      for (const n of [0, 3, MAX_SKIP + 5]) {
        const forged: Envelope = { type, from: bob.self, to: alice.self, sid: alice.sid, header: encodeHeader(spk, 0, n), ct: new Uint8Array(32) };
        t.throws(() => openMessage(crypto, alice, forged, NOW), code('decrypt_failed'), `${type} n=${n}`);
        t.equal(encodeSession(alice), before, 'state untouched');
      }
    }
    t.throws(() => decrypt(crypto, alice.ratchet, encodeHeader(spk, 0, 0), new Uint8Array(32), NOW), code('decrypt_failed'));
    t.equal(encodeSession(alice), before);
    // The genuine reply still opens.
    const r = sealMessage(crypto, bob, utf8('reply'));
    t.equal(fromUtf8(openMessage(crypto, alice, r.envelope, NOW).plaintext), 'reply');
  });

  t.test(`${crypto.name}: PN skipping across a ratchet step is bounded too`, async (t) => {
    let { alice, bob } = establishedPair(crypto, NOW);
    // Alice's chain moves to index MAX_SKIP + 2 while Bob has only seen message 0 (the hello).
    let s = alice.ratchet;
    for (let i = 0; i < MAX_SKIP + 1; i++) s = encrypt(crypto, s, new Uint8Array(0)).state;
    alice = { ...alice, ratchet: s };
    // Bob replies, Alice ratchets, Alice's next message carries PN = MAX_SKIP + 2.
    const r = sealMessage(crypto, bob, utf8('r'));
    bob = r.session;
    alice = openMessage(crypto, alice, r.envelope, NOW).session;
    const m = sealMessage(crypto, alice, utf8('m'));
    const before = encodeSession(bob);
    t.throws(() => openMessage(crypto, bob, m.envelope, NOW), code('too_many_skipped'));
    t.equal(encodeSession(bob), before);
  });

  t.test(`${crypto.name}: stored skipped keys are capped and expire`, async (t) => {
    let { alice, bob } = establishedPair(crypto, NOW);
    // Three chains of MAX_SKIP skips each would store 3000 keys; only the newest 2000 stay.
    let lost: Envelope | undefined;
    for (let round = 0; round < 3; round++) {
      const sent = sendN(crypto, alice, MAX_SKIP + 1, `r${round}-`);
      alice = sent.session;
      if (round === 0) lost = sent.envelopes[0];
      bob = openMessage(crypto, bob, sent.envelopes[MAX_SKIP]!, NOW).session;
      const back = sealMessage(crypto, bob, utf8('ack'));
      bob = back.session;
      alice = openMessage(crypto, alice, back.envelope, NOW).session;
    }
    t.equal(bob.ratchet.skipped.length, MAX_STORED_SKIPPED);
    // The oldest skipped key (round 0, message 0) was evicted: that message no longer decrypts.
    t.throws(() => openMessage(crypto, bob, lost!, NOW));

    // Expiry: a skipped key older than the max age is purged in the next decrypt.
    let p = establishedPair(crypto, NOW);
    const sent = sendN(crypto, p.alice, 3, 'e');
    p.bob = openMessage(crypto, p.bob, sent.envelopes[2]!, NOW).session;
    t.equal(p.bob.ratchet.skipped.length, 2);
    const late = NOW + SKIPPED_KEY_MAX_AGE_MS + 1;
    const fresh = sealMessage(crypto, sent.session, utf8('fresh'));
    const after = openMessage(crypto, p.bob, fresh.envelope, late);
    t.equal(after.session.ratchet.skipped.length, 0, 'expired keys purged inside the decrypt');
    t.throws(() => openMessage(crypto, after.session, sent.envelopes[0]!, late), code('duplicate_message'));
    // Within the age limit the late message still decrypts.
    const inTime = openMessage(crypto, p.bob, sent.envelopes[0]!, NOW + SKIPPED_KEY_MAX_AGE_MS);
    t.equal(fromUtf8(inTime.plaintext), 'e0');
    t.equal(inTime.session.ratchet.skipped.length, 1, 'a used skipped key is deleted');
    t.throws(() => openMessage(crypto, inTime.session, sent.envelopes[0]!, NOW), code('duplicate_message'));
  });

  t.test(`${crypto.name}: forward secrecy`, async (t) => {
    let { alice, bob } = establishedPair(crypto, NOW);
    const history: Envelope[] = [];
    const snapshots: Session[] = [];
    for (let i = 0; i < 12; i++) {
      // Alternate directions every third message so the DH ratchet turns.
      const fromAlice = Math.floor(i / 3) % 2 === 0;
      if (fromAlice) {
        const r = sealMessage(crypto, alice, utf8(`m${i}`));
        alice = r.session;
        bob = openMessage(crypto, bob, r.envelope, NOW).session;
        history.push(r.envelope);
        snapshots.push(bob);
      } else {
        const r = sealMessage(crypto, bob, utf8(`m${i}`));
        bob = r.session;
        alice = openMessage(crypto, alice, r.envelope, NOW).session;
        history.push(r.envelope);
        snapshots.push(alice);
      }
    }
    // A state captured after message i was received decrypts no message j <= i.
    for (let i = 0; i < history.length; i++) {
      for (let j = 0; j <= i; j++) {
        const receiver = history[j]!.to;
        // The receiver's state at time i (the latest snapshot of that party at or before i).
        let state: Session | undefined;
        for (let k = i; k >= 0; k--) if (snapshots[k]!.self === receiver) { state = snapshots[k]; break; }
        if (!state) continue;
        t.throws(() => openMessage(crypto, state!, history[j]!, NOW), `state after ${i} cannot open ${j}`);
      }
    }
  });

  t.test(`${crypto.name}: post-compromise security`, async (t) => {
    let { alice, bob } = establishedPair(crypto, NOW);
    const r1 = sealMessage(crypto, bob, utf8('b1'));
    bob = r1.session;
    alice = openMessage(crypto, alice, r1.envelope, NOW).session;
    const stolen = bob; // the attacker copies Bob's whole state here
    // Alice -> Bob on a new ratchet key: still within the stolen state's reach (control).
    const r2 = sealMessage(crypto, alice, utf8('a2'));
    alice = r2.session;
    bob = openMessage(crypto, bob, r2.envelope, NOW).session;
    const thief = openMessage(crypto, stolen, r2.envelope, NOW);
    t.equal(fromUtf8(thief.plaintext), 'a2', 'before the round trip the stolen state still reads');
    // The round trip completes: Bob answers on a ratchet key drawn after the theft.
    const r3 = sealMessage(crypto, bob, utf8('b3'));
    bob = r3.session;
    alice = openMessage(crypto, alice, r3.envelope, NOW).session;
    // Everything Alice sends from now on is out of reach, whatever the thief was fed.
    const r4 = sealMessage(crypto, alice, utf8('secret'));
    t.equal(fromUtf8(openMessage(crypto, bob, r4.envelope, NOW).plaintext), 'secret');
    t.throws(() => openMessage(crypto, stolen, r4.envelope, NOW), code('decrypt_failed'));
    t.throws(() => openMessage(crypto, thief.session, r4.envelope, NOW), code('decrypt_failed'));
    const r5 = sealMessage(crypto, r4.session, utf8('secret2'));
    t.throws(() => openMessage(crypto, thief.session, r5.envelope, NOW));
  });
}
