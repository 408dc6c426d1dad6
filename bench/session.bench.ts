import { readFileSync } from 'node:fs';
import { providers } from '../runtime/crypto/index.ts';
import type { CryptoProvider } from '../runtime/crypto/provider.ts';
import { decodeEnvelope, encodeEnvelope } from '../runtime/session/envelope.ts';
import { makeIdentity, publishPrekeys } from '../runtime/session/fixtures.ts';
import { decrypt, encrypt } from '../runtime/session/ratchet.ts';
import { acceptSession, initiateSession, openMessage, sealMessage, type Offer, type Session } from '../runtime/session/session.ts';
import { establishedPair, lookupFrom } from '../runtime/session/test-helpers.ts';
import { interleavedRates, opsPerSecond, percentile, target, type Benchmark } from './harness.ts';

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
/** Unmeasured round trips first: the code is optimized and the key pair pool is running. */
const PING_PONG_WARM_UP = 500;
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
  let ra = alice.ratchet;
  let rb = bob.ratchet;
  const payload = new Uint8Array(PAYLOAD).fill(0x42);
  const key = crypto.randomBytes(32);
  const nonce = crypto.randomBytes(12);
  const aad = crypto.randomBytes(168); // same AAD size as a ratchet message (AD || header)
  const ckInputs = [new Uint8Array([1]), new Uint8Array([2])];
  const info = new Uint8Array(17);
  const zero = new Uint8Array(32);
  // Four operations, measured side by side (interleavedRates) so that they share the machine's moments.
  return interleavedRates(
    {
      full: () => {
        const s = sealMessage(crypto, alice, payload);
        alice = s.session;
        bob = openMessage(crypto, bob, decodeEnvelope(encodeEnvelope(s.envelope)), NOW).session;
      },
      ratchetOnly: () => {
        const e = encrypt(crypto, ra, payload);
        ra = e.state;
        rb = decrypt(crypto, rb, e.header, e.ciphertext, NOW).state;
      },
      raw: () => crypto.chachaOpen(key, nonce, crypto.chachaSeal(key, nonce, payload, aad), aad),
      // The primitive calls PROTOCOL.md fixes for one message, both sides, and nothing else:
      // 2 x (KDF_CK: 2 HMAC + message-key HKDF) + seal + open. No session code can beat this.
      floor: () => {
        for (let side = 0; side < 2; side++) {
          crypto.hmacSha256Each(key, ckInputs);
          crypto.hkdfSha256(key, zero, info, 44);
        }
        crypto.chachaOpen(key, nonce, crypto.chachaSeal(key, nonce, payload, aad), aad);
      },
    },
    ms * 4,
  );
}

/**
 * CPU time of the calling thread (ms), where Linux tells it (/proc/thread-self/schedstat, ns),
 * else NaN. process.cpuUsage() counts every thread, including the key pair pool's. The kernel
 * brings this figure up to date at scheduler ticks and switches: right over a run of seconds,
 * meaningless for one short call.
 */
function threadCpuMs(): number {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  } catch {
    return NaN;
  }
}

async function pingPong(crypto: CryptoProvider, samples: number) {
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
  const warmUpEnd = performance.now() + PING_PONG_MAX_MS / 5;
  for (let i = 0; i < PING_PONG_WARM_UP && performance.now() < warmUpEnd; i++) roundTrip();
  // A moment idle, as between real messages: the pool worker refills (it runs during the
  // measurement too, on its own thread; every sample below is kept).
  await new Promise((resolve) => setTimeout(resolve, 50));
  const times: number[] = [];
  const deadline = performance.now() + PING_PONG_MAX_MS;
  const cpu0 = process.cpuUsage();
  const thread0 = threadCpuMs();
  for (let i = 0; i < samples && performance.now() < deadline; i++) {
    const t0 = performance.now();
    roundTrip();
    times.push(performance.now() - t0);
  }
  const threadMs = (threadCpuMs() - thread0) / times.length;
  const cpu = process.cpuUsage(cpu0);
  // Mean CPU time per round trip: what the round trip costs when the machine is not shared.
  const cpuMs = (cpu.user + cpu.system) / 1000 / times.length;
  return { p50: percentile(times, 50), p99: percentile(times, 99), samples: times.length, cpuMs, threadMs };
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
    const side = (metric: string, ours: number, raw: number) => {
      metrics[`${p}.${metric}`] = ours;
      baseline[`${p}.${metric}`] = raw;
      ratios[`${p}.${metric}`] = ours / raw;
    };
    side('oneway_1k_msgs_per_s', w.full.perS, w.raw.perS);
    side('oneway_1k_crypto_floor_per_s', w.floor.perS, w.raw.perS);
    side('oneway_1k_msgs_per_cpu_s', w.full.perCpuS, w.raw.perCpuS);
    side('oneway_1k_ratchet_only_per_s', w.ratchetOnly.perS, w.raw.perS);
    ratios[`${p}.oneway_1k_vs_crypto_floor`] = w.full.perS / w.floor.perS;
    const pp = await pingPong(crypto, quick ? 500 : PING_PONG_SAMPLES);
    metrics[`${p}.pingpong_p50_ms`] = pp.p50;
    metrics[`${p}.pingpong_p99_ms`] = pp.p99;
    metrics[`${p}.pingpong_samples`] = pp.samples;
    metrics[`${p}.pingpong_cpu_ms_per_round_trip`] = pp.cpuMs;
    metrics[`${p}.pingpong_thread_cpu_ms_per_round_trip`] = pp.threadMs;
    if (p === 'node') {
      targets['node.oneway_1k_vs_raw_aead'] = target(w.full.perS / w.raw.perS, '>=', 0.5);
      targets['node.pingpong_p99_ms'] = target(pp.p99, '<=', 0.5);
      // The same targets judged on CPU time (valid on a shared machine; not a replacement).
      targets['node.oneway_1k_vs_raw_aead_cpu'] = target(w.full.perCpuS / w.raw.perCpuS, '>=', 0.5);
      targets['node.pingpong_cpu_ms_per_round_trip'] = target(pp.cpuMs, '<=', 0.5);
    }
  }
  return {
    metrics,
    baseline,
    ratios,
    targets,
    notes: [
      'baseline = raw ChaCha20-Poly1305 seal+open of the same 1 KiB payload (168-byte AAD), same provider, same run',
      'oneway_1k = seal + frame encode + frame decode + open (what a message costs end to end, no store); the one-way figures (whole path, ratchet only, raw AEAD, crypto floor) are measured side by side, 10 rounds in which each gets a 0.4 s slice in turn, wall clock and CPU time together, so a host whose speed drifts moves them all alike',
      'crypto_floor = only the primitive calls the protocol fixes per message (4 HMAC + 2 HKDF-44 + seal + open): the ceiling for oneway; oneway_1k_vs_crypto_floor shows how close the session path gets to it',
      'handshake = bundle verify + X3DH/PQXDH both sides + first message sealed and opened (no store)',
      'pingpong = one round trip, each message a DH ratchet step (64-byte payload, frames encoded and decoded); 500 unmeasured round trips and 50 ms idle first, then every sample kept',
      'a DH ratchet step takes its new key pair from a background thread (runtime/crypto/x25519-pool.ts, node provider with OS randomness only): a fresh pair costs a scalar multiplication, paid off the critical path; the critical path keeps 2 DH per received message, each one ladder of OpenSSL called through the native addon (runtime/crypto/native/x25519.c), without node:crypto\'s key import and context (which add about half again to a DH). pingpong_thread_cpu_ms_per_round_trip is the measuring thread alone (Linux /proc/thread-self/schedstat); pingpong_cpu_ms_per_round_trip also counts the pool thread and V8 helper threads',
      'KDF_CK computes its two HMACs under one key schedule (provider.hmacSha256Each): 6 SHA-256 compressions instead of 8 per chain step',
      'a message costs, per side, 5 HMAC-SHA-256 fixed by PROTOCOL.md section 6 (KDF_CK: 2, message-key HKDF: 3) besides its AEAD. Through node:crypto each HMAC call costs ~2.3 us of CPU, nearly all of it crossing into C++ and building objects (SHA-256 itself is ~40 ns per block there). The node provider does each KDF_CK and each HKDF in ONE call to a small native addon (runtime/crypto/native/kdf.c, Node-API, on the SHA-256 of Node\'s OpenSSL; bytes cross through two buffers of the calling module, named on every call): KDF_CK ~0.5 us, message-key HKDF ~0.65 us, against 1.9 and 2.5 us for the JavaScript SHA-256 (sha256-small.ts, ~0.19 us per block on this host), which remains the path where the addon is not built (TALOS_NATIVE=0)',
      'the frame decoder\'s msg fast path checks each base64url field is canonical (ASCII, length, alphabet, unused bits) instead of re-encoding the frame to compare: ~1 us less per 1 KiB frame; a decoded ciphertext is cut from an 8 KiB slab of the decoder\'s own instead of a fresh zeroed array: ~7 % of a message',
      'ChaCha20-Poly1305 runs through the native addon too (runtime/crypto/native/aead.c: OpenSSL\'s cipher without node:crypto\'s cipher objects), 2-3x faster for a message of this size. That made the whole path faster and its ratio to the raw AEAD smaller, as the baseline is that same AEAD: the crypto floor itself is now only ~0.54 of it (the 4 KDF calls cost about what seal + open do), which leaves the session code nearly no room under the 0.5 target; oneway_1k_vs_crypto_floor is the measure of the session code',
      'what is left between the whole path and the crypto floor (CPU profile of a 1 KiB one-way loop): AEAD ~17 %, KDFs ~15 %, frame encode ~2 us and decode ~3.4 us (base64url of the 1 KiB ciphertext and the canonical-form checks), the rest the ratchet and session code around them',
      '*_per_cpu_s: per second of this process\'s CPU time (process.cpuUsage); pingpong_cpu_ms_per_round_trip: mean CPU per round trip. Use these on a shared machine: the wall-clock figures there mostly measure the scheduler',
      'allocation: a small typed array lives on V8\'s heap until something asks for its ArrayBuffer (a DataView, a subarray, node:crypto reading a key); then V8 moves it off the heap with a malloc, and the GC later sweeps and frees it. The message path avoids that (header and AAD byte by byte, AAD and message keys in reused buffers, no subarrays in the JavaScript SHA-256, small arrays copied into Node\'s pool for encoding, the opened plaintext is the cipher\'s own buffer): counted with a uprobe on malloc, a 1 KiB one-way message went from 91 to 59 mallocs (the two AEAD calls alone made ~40, through node:crypto\'s cipher objects, before the addon took them), a ping-pong round trip from 400 to 287',
      'ping-pong and the host: a round trip makes 6 X25519 scalar multiplications (2 key pairs, 4 DH; fixed by the DH ratchet), so its latency follows the host\'s DH speed (env.host.x25519_dh_us): p99 0.22 ms at ~35 us per DH with the AEAD on the addon (0.39 ms there before it); 0.30 ms at ~27 us and 0.65-0.92 ms at 32-66 us on earlier trees and hosts; in the slowest 2-3 % the DH calls themselves run 2-3x slower while the key-pair thread works on the other core',
      'measured on a shared 2-core machine: ratios count, absolute numbers are indicative',
    ],
  };
};
export default bench;
