import { providers } from '../runtime/crypto/index.ts';
import type { CryptoProvider } from '../runtime/crypto/provider.ts';
import { decodeEnvelope, encodeEnvelope } from '../runtime/session/envelope.ts';
import { makeIdentity, publishPrekeys } from '../runtime/session/fixtures.ts';
import { decrypt, encrypt } from '../runtime/session/ratchet.ts';
import { acceptSession, initiateSession, openMessage, sealMessage, type Offer, type Session } from '../runtime/session/session.ts';
import { establishedPair, lookupFrom } from '../runtime/session/test-helpers.ts';
import { opsPerSecond, percentile, target, type Benchmark } from './harness.ts';

/**
 * `npm run bench -- session`: per provider, side by side with the raw AEAD of the same payload
 * measured in the same run:
 *  - handshakes/s, X3DH and PQXDH (both sides: bundle check, derive, first message, accept);
 *  - one-way 1 KiB messages/s through the whole path (seal + frame encode + frame decode +
 *    open), and through the ratchet alone; the raw baseline is ChaCha20-Poly1305 seal + open;
 *  - ping-pong round trips (every message a DH ratchet step), p50/p99 latency.
 * Targets (node provider): one-way >= 50% of raw seal+open; ping-pong p99 < 0.5 ms.
 */
const PAYLOAD = 1024;
const NOW = 1_700_000_000_000;
const PING_PONG_SAMPLES = 3000;
/** The slow (pure JS) provider gets fewer samples rather than minutes of run time. */
const PING_PONG_MAX_MS = 5000;

function handshakeRate(crypto: CryptoProvider, pq: boolean, ms: number): number {
  const alice = makeIdentity(crypto);
  const bob = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bob, { pq, opks: 1 });
  const offer: Offer = { bundle: pub.bundle, opk: pub.opks[0]!.json };
  const lookup = lookupFrom(pub, offer);
  const hello = new Uint8Array(32);
  return opsPerSecond(() => {
    const a = initiateSession(crypto, alice, offer, NOW);
    const first = sealMessage(crypto, a, hello);
    acceptSession(crypto, bob, first.envelope, lookup, NOW);
  }, ms, 1);
}

function oneWay(crypto: CryptoProvider, ms: number) {
  const pair = establishedPair(crypto, NOW);
  let alice: Session = { ...pair.alice, handshake: null };
  let bob = pair.bob;
  const payload = new Uint8Array(PAYLOAD).fill(0x42);
  const full = opsPerSecond(() => {
    const s = sealMessage(crypto, alice, payload);
    alice = s.session;
    const o = openMessage(crypto, bob, decodeEnvelope(encodeEnvelope(s.envelope)), NOW);
    bob = o.session;
  }, ms);
  let ra = alice.ratchet;
  let rb = bob.ratchet;
  const ratchetOnly = opsPerSecond(() => {
    const e = encrypt(crypto, ra, payload);
    ra = e.state;
    rb = decrypt(crypto, rb, e.header, e.ciphertext, NOW).state;
  }, ms);
  const key = crypto.randomBytes(32);
  const nonce = crypto.randomBytes(12);
  const aad = crypto.randomBytes(168); // same AAD size as a ratchet message (AD || header)
  const raw = opsPerSecond(() => {
    crypto.chachaOpen(key, nonce, crypto.chachaSeal(key, nonce, payload, aad), aad);
  }, ms);
  // The primitive calls PROTOCOL.md fixes for one message, both sides, and nothing else:
  // 2 x (KDF_CK: 2 HMAC + message-key HKDF) + seal + open. No session code can beat this.
  const one = new Uint8Array([1]);
  const zero = new Uint8Array(32);
  const floor = opsPerSecond(() => {
    for (let side = 0; side < 2; side++) {
      crypto.hmacSha256(key, one);
      crypto.hmacSha256(key, one);
      crypto.hkdfSha256(key, zero, one, 44);
    }
    crypto.chachaOpen(key, nonce, crypto.chachaSeal(key, nonce, payload, aad), aad);
  }, ms);
  return { full, ratchetOnly, raw, floor };
}

function pingPong(crypto: CryptoProvider, samples: number) {
  const pair = establishedPair(crypto, NOW);
  let alice: Session = { ...pair.alice, handshake: null };
  let bob = pair.bob;
  const payload = new Uint8Array(64);
  const roundTrip = () => {
    const a = sealMessage(crypto, alice, payload);
    alice = a.session;
    bob = openMessage(crypto, bob, decodeEnvelope(encodeEnvelope(a.envelope)), NOW).session;
    const b = sealMessage(crypto, bob, payload);
    bob = b.session;
    alice = openMessage(crypto, alice, decodeEnvelope(encodeEnvelope(b.envelope)), NOW).session;
  };
  for (let i = 0; i < 50; i++) roundTrip(); // warm-up
  const times: number[] = [];
  const deadline = performance.now() + PING_PONG_MAX_MS;
  for (let i = 0; i < samples && performance.now() < deadline; i++) {
    const t0 = performance.now();
    roundTrip();
    times.push(performance.now() - t0);
  }
  return { p50: percentile(times, 50), p99: percentile(times, 99), samples: times.length };
}

const bench: Benchmark = async (args) => {
  const quick = args.includes('--quick');
  const ms = quick ? 300 : 1000;
  const metrics: Record<string, number> = {};
  const baseline: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  const targets: Record<string, { value: number; op: '>=' | '<='; met: boolean }> = {};
  for (const crypto of providers()) {
    const p = crypto.name;
    metrics[`${p}.handshake_x3dh_per_s`] = handshakeRate(crypto, false, ms);
    metrics[`${p}.handshake_pqxdh_per_s`] = handshakeRate(crypto, true, ms);
    const w = oneWay(crypto, ms);
    metrics[`${p}.oneway_1k_msgs_per_s`] = w.full;
    baseline[`${p}.oneway_1k_msgs_per_s`] = w.raw;
    ratios[`${p}.oneway_1k_msgs_per_s`] = w.full / w.raw;
    metrics[`${p}.oneway_1k_crypto_floor_per_s`] = w.floor;
    baseline[`${p}.oneway_1k_crypto_floor_per_s`] = w.raw;
    ratios[`${p}.oneway_1k_crypto_floor_per_s`] = w.floor / w.raw;
    ratios[`${p}.oneway_1k_vs_crypto_floor`] = w.full / w.floor;
    metrics[`${p}.oneway_1k_ratchet_only_per_s`] = w.ratchetOnly;
    baseline[`${p}.oneway_1k_ratchet_only_per_s`] = w.raw;
    ratios[`${p}.oneway_1k_ratchet_only_per_s`] = w.ratchetOnly / w.raw;
    const pp = pingPong(crypto, quick ? 500 : PING_PONG_SAMPLES);
    metrics[`${p}.pingpong_p50_ms`] = pp.p50;
    metrics[`${p}.pingpong_p99_ms`] = pp.p99;
    metrics[`${p}.pingpong_samples`] = pp.samples;
    if (p === 'node') {
      targets['node.oneway_1k_vs_raw_aead'] = target(w.full / w.raw, '>=', 0.5);
      targets['node.pingpong_p99_ms'] = target(pp.p99, '<=', 0.5);
    }
  }
  return {
    metrics,
    baseline,
    ratios,
    targets,
    notes: [
      'baseline = raw ChaCha20-Poly1305 seal+open of the same 1 KiB payload (168-byte AAD), same provider, same run',
      'oneway_1k = seal + frame encode + frame decode + open (what a message costs end to end, no store)',
      'crypto_floor = only the primitive calls the protocol fixes per message (4 HMAC + 2 HKDF-44 + seal + open): the ceiling for oneway; oneway_1k_vs_crypto_floor shows how close the session path gets to it',
      'handshake = bundle verify + X3DH/PQXDH both sides + first message sealed and opened (no store)',
      'pingpong = one round trip, each message a DH ratchet step (64-byte payload, frames encoded and decoded)',
      'a message costs, per side, 5 HMAC-SHA-256 fixed by PROTOCOL.md section 6 (KDF_CK: 2, message-key HKDF: 3) besides its AEAD; through node:crypto each HMAC costs about as much as a 1 KiB seal, which bounds oneway/raw well below 0.5 whatever the session code does',
      'measured on a shared 2-core machine: ratios count, absolute numbers are indicative',
    ],
  };
};
export default bench;
