import type { Benchmark } from './harness.ts';
import { target } from './harness.ts';
import { createNobleProvider } from '../runtime/crypto/noble.ts';
import { createNodeProvider } from '../runtime/crypto/node.ts';
import type { CryptoProvider } from '../runtime/crypto/provider.ts';

/**
 * Every primitive on both providers, side by side, in the same run: metrics are node ops/s,
 * baseline is noble ops/s, ratios are node / noble. `npm run bench -- crypto [ms-per-case]`.
 */
const KIB = 1024;

type Case = (p: CryptoProvider) => () => unknown;

/**
 * Measures two functions in alternating short slices, so both see the same machine load, and
 * counts both the wall-clock time and the CPU time this process was given. The machine is
 * shared by several people: wall-clock ops/s fall when others run, CPU-time ops/s do not, so the
 * headline figures are ops per CPU-second and the wall-clock ratio is reported beside them.
 */
interface Paired {
  cpu: [number, number];
  wall: [number, number];
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function pairedOpsPerSecond(a: () => unknown, b: () => unknown, totalMs: number, slices = 20): Paired {
  const ops = [0, 0];
  const wall = [0, 0];
  const cpu = [0, 0];
  const fns = [a, b];
  for (const fn of fns) for (let i = 0; i < 8; i++) fn(); // warm-up
  const sliceMs = totalMs / slices / 2;
  for (let s = 0; s < slices; s++) {
    for (const i of [0, 1]) {
      const fn = fns[i]!;
      const cpuStart = cpuMs();
      const start = performance.now();
      let now = start;
      let n = 0;
      while (now - start < sliceMs) {
        fn();
        n++;
        now = performance.now();
      }
      cpu[i]! += cpuMs() - cpuStart;
      ops[i]! += n;
      wall[i]! += now - start;
    }
  }
  const rate = (i: number, ms: number[]) => (ops[i]! * 1000) / Math.max(ms[i]!, 1e-3);
  return { cpu: [rate(0, cpu), rate(1, cpu)], wall: [rate(0, wall), rate(1, wall)] };
}

function cases(): Record<string, Case> {
  const seed = new Uint8Array(32).fill(1);
  const message = new Uint8Array(256).fill(2);
  const data = new Uint8Array(KIB).fill(3);
  const key = new Uint8Array(32).fill(4);
  const nonce12 = new Uint8Array(12).fill(5);
  const nonce24 = new Uint8Array(24).fill(6);
  const kemSeed = new Uint8Array(64).fill(7);
  const reference = createNobleProvider();
  const edPublic = reference.ed25519PublicKey(seed);
  const signature = reference.ed25519Sign(seed, message);
  const xSecret = new Uint8Array(32).fill(8);
  const xPeer = reference.x25519PublicKey(new Uint8Array(32).fill(9));
  const kemPublic = reference.mlkemKeyPair(kemSeed).publicKey;
  const kemCipherText = reference.mlkemEncapsulate(kemPublic, new Uint8Array(32).fill(10)).cipherText;
  // More distinct keys than the node provider's cache holds: every verification is a miss.
  const manyKeys = Array.from({ length: 2048 }, (_, i) => {
    const s = new Uint8Array(32).fill(11);
    s[0] = i & 0xff;
    s[1] = i >> 8;
    return { publicKey: reference.ed25519PublicKey(s), signature: reference.ed25519Sign(s, message) };
  });
  return {
    ed25519_sign: (p) => () => p.ed25519Sign(seed, message),
    // The same issuer key verified again and again: the gateway's hot path (node caches the
    // key's KeyObject and strict pre-check verdict).
    ed25519_verify: (p) => () => p.ed25519Verify(edPublic, message, signature),
    ed25519_verify_cold_key: (p) => {
      let i = 0;
      return () => {
        const k = manyKeys[i++ % manyKeys.length]!;
        return p.ed25519Verify(k.publicKey, message, k.signature);
      };
    },
    ed25519_public_key: (p) => () => p.ed25519PublicKey(seed.slice()),
    // One secret used repeatedly (a responder's prekey; node remembers its KeyObject per array).
    x25519: (p) => () => p.x25519(xSecret, xPeer),
    // A fresh secret array every time (a ratchet step): no KeyObject reuse.
    x25519_fresh_secret: (p) => () => p.x25519(xSecret.slice(), xPeer),
    x25519_public_key: (p) => () => p.x25519PublicKey(xSecret.slice()),
    chacha_seal_open_1k: (p) => () => p.chachaOpen(key, nonce12, p.chachaSeal(key, nonce12, data)),
    xchacha_seal_open_1k: (p) => () => p.xchachaOpen(key, nonce24, p.xchachaSeal(key, nonce24, data)),
    sha256_1k: (p) => () => p.sha256(data),
    hmac_sha256_1k: (p) => () => p.hmacSha256(key, data),
    hkdf_sha256_32: (p) => () => p.hkdfSha256(key, nonce12, message.subarray(0, 32), 32),
    mlkem_keygen: (p) => () => p.mlkemKeyPair(kemSeed),
    mlkem_encaps: (p) => () => p.mlkemEncapsulate(kemPublic),
    mlkem_decaps: (p) => () => p.mlkemDecapsulate(kemCipherText, kemSeed),
  };
}

const bench: Benchmark = async (args) => {
  const ms = Number(args[0] ?? 1000);
  const noble = createNobleProvider();
  const node = createNodeProvider();
  const metrics: Record<string, number> = {};
  const baseline: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  for (const [name, make] of Object.entries(cases())) {
    const { cpu, wall } = pairedOpsPerSecond(make(noble), make(node), ms);
    baseline[name] = Math.round(cpu[0]);
    metrics[name] = Math.round(cpu[1]);
    ratios[name] = Number((cpu[1] / cpu[0]).toFixed(2));
    ratios[`${name}_wall_clock`] = Number((wall[1] / wall[0]).toFixed(2));
  }
  return {
    metrics,
    baseline,
    ratios,
    targets: {
      ed25519_verify: target(ratios['ed25519_verify']!, '>=', 10),
      x25519: target(ratios['x25519']!, '>=', 10),
    },
    notes: [
      'metrics: node provider ops per CPU-second; baseline: noble provider ops per CPU-second; ratios: node / noble (the *_wall_clock ratios use elapsed time instead)',
      'ed25519_verify verifies one issuer key repeatedly (the gateway case); node caches its KeyObject and pre-check verdict',
      'ed25519_verify_cold_key cycles through 2048 keys (more than the 1024-entry cache): every node verification pays the byte-level key pre-check and a new KeyObject',
      'x25519 reuses one secret array (node remembers its private KeyObject per array); x25519_fresh_secret copies the secret each call',
      'both providers are measured in 20 alternating slices per case, so they share the same machine load',
      'node provider ML-KEM delegates to noble on Node 20 (OpenSSL 3.0 has no ML-KEM): ratios near 1 are expected',
      'AEAD cases seal then open 1 KiB; xchacha on node derives the HChaCha20 subkey in JavaScript',
    ],
  };
};

export default bench;
