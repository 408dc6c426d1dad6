import { verifyChainStatic } from '../runtime/capability/verify.ts';
import type { Grant } from '../runtime/capability/grant.ts';
import { decodeToken, delegateToken, encodeToken, mintToken, type Token } from '../runtime/capability/token.ts';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { fromHex } from '../runtime/encoding/bytes.ts';
import { didFromPublicKey } from '../runtime/identity/did.ts';
import { DOMAINS, signObject, verifyObject } from '../runtime/identity/signing.ts';
import { CryptoPool } from '../workers/pool.ts';
import type { SignedItem } from '../workers/tasks.ts';
import { percentile, target, type Benchmark } from './harness.ts';

/**
 * `npm run bench -- pool [threads] [ms]`: CPU-heavy crypto on the worker pool against the main
 * thread, in the same run, node provider.
 *  - token_chains: uncached capability-token chain verification of the compact form as it
 *    arrives in a request (decodeToken + verifyChainStatic: a chain of 2 tokens, 10 glob grants
 *    each, 2 Ed25519 signatures + attenuation), every token distinct.
 *    Main thread: one after another. Pool: batches of BATCH tokens, IN_FLIGHT batches at once.
 *  - signed_objects: Ed25519 verification of signed objects (verifyObject), same set-up.
 *  - latency_*: one request's latency (p50, µs) inline vs through the pool, for 1 and 8 items:
 *    what INLINE_MAX_ITEMS in workers/pool.ts is set from.
 * Target: token_chains on the pool >= 1.6x the main thread with two threads on two cores.
 */
const BATCH = 64;
const IN_FLIGHT = 4;
const TOKENS = 512;
const LATENCY_SAMPLES = 300;
const ROUNDS = 6;

async function poolThroughput(run: (batch: number) => Promise<unknown>, ms: number): Promise<number> {
  // Warm-up, then keep IN_FLIGHT batches outstanding for `ms`.
  for (let i = 0; i < IN_FLIGHT; i++) await run(i);
  let done = 0;
  let next = 0;
  const start = performance.now();
  const lane = async () => {
    while (performance.now() - start < ms) {
      await run(next++);
      done += BATCH;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, lane));
  return (done * 1000) / (performance.now() - start);
}

function mainThroughput(verifyOne: (i: number) => unknown, ms: number): number {
  for (let i = 0; i < 200; i++) verifyOne(i);
  let done = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    for (let i = 0; i < 16; i++) verifyOne(done + i);
    done += 16;
  }
  return (done * 1000) / (performance.now() - start);
}

async function latencyUs(fn: () => Promise<unknown> | unknown): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 50; i++) await fn();
  for (let i = 0; i < LATENCY_SAMPLES; i++) {
    const t0 = performance.now();
    await fn();
    samples.push((performance.now() - t0) * 1000);
  }
  return percentile(samples, 50);
}

const bench: Benchmark = async (args) => {
  const threads = Number(args[0] ?? 2);
  const ms = Number(args[1] ?? 700);
  const crypto = createCryptoProvider({ name: 'node' });
  const seed = (n: number) => fromHex(n.toString(16).padStart(2, '0').repeat(32));
  const did = (n: number) => didFromPublicKey(crypto.ed25519PublicKey(seed(n)));
  const [ROOT, AGENT, SUB, GW] = [1, 2, 3, 4];
  const T0 = Math.floor(Date.now() / 1000) - 60;
  const tools = ['read_text_file', 'read_media_file', 'list_directory', 'directory_tree', 'search_files', 'get_file_info', 'write_file', 'edit_file', 'create_directory', 'move_file'];
  const rootGrants: Grant[] = tools.map((tool, i) => ({ method: 'tools/call', tool, args: { path: { glob: `workspace/project-${i}/**` } } }));
  const leafGrants: Grant[] = tools.map((tool, i) => ({ method: 'tools/call', tool, args: { path: { glob: `workspace/project-${i}/src/**` } } }));
  const tokens: Token[] = [];
  for (let i = 0; i < TOKENS; i++) {
    const root = mintToken(crypto, { issuerKey: seed(ROOT), sub: did(AGENT), aud: did(GW), grants: rootGrants, nbf: T0, exp: T0 + 86_400 + i });
    tokens.push(delegateToken(crypto, { parent: root, issuerKey: seed(AGENT), sub: did(SUB), grants: leafGrants, exp: T0 + 3600 + i }));
  }
  const roots = new Set([did(ROOT)]);
  const shared = { trustedRoots: [did(ROOT)] };
  // As they arrive in requests: the compact form, decoded and verified on every check.
  const compact = tokens.map(encodeToken);
  for (const c of compact) if (!verifyChainStatic(crypto, decodeToken(c), roots).ok) throw new Error('bench token refused');

  const kp = crypto.ed25519KeyPair(seed(9));
  const objects: SignedItem[] = Array.from({ length: TOKENS }, (_, i) => ({
    publicKey: kp.publicKey,
    domain: DOMAINS.prekeyBundle,
    obj: signObject(crypto, kp.secretKey, DOMAINS.prekeyBundle, { v: 1, did: did(9), ik_dh: 'A'.repeat(43), spk: { id: i, pub: 'B'.repeat(43) }, exp: 1_800_000_000_000 + i }),
  }));

  const pool = new CryptoPool({ threads, provider: 'node', maxQueue: 64 });
  try {
    const batchOf = <T>(items: T[], b: number) => {
      const start = (b * BATCH) % items.length;
      return items.slice(start, start + BATCH).concat(items.slice(0, Math.max(0, start + BATCH - items.length)));
    };
    // Many short alternating slices, totals compared: a neighbour's load burst hits both sides
    // alike (on a shared machine the load moves within seconds).
    const sum = { mainChains: 0, poolChains: 0, mainObjects: 0, poolObjects: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      sum.mainChains += mainThroughput((i) => verifyChainStatic(crypto, decodeToken(compact[i % TOKENS]!), roots), ms);
      sum.poolChains += await poolThroughput((b) => pool.runOnPool('verify-token-chains', batchOf(compact, b), shared), ms);
      sum.mainObjects += mainThroughput((i) => verifyObject(crypto, objects[i % TOKENS]!.publicKey, objects[i % TOKENS]!.domain, objects[i % TOKENS]!.obj), ms);
      sum.poolObjects += await poolThroughput((b) => pool.runOnPool('verify-objects', batchOf(objects, b), null), ms);
    }
    const mean = (x: number) => x / ROUNDS;

    let k = 0;
    const one = () => [compact[k++ % TOKENS]!];
    const eight = () => compact.slice((k = (k + 8) % (TOKENS - 8)), k + 8);
    const latency = {
      latency_1_chain_inline_us: await latencyUs(() => pool.runInline('verify-token-chains', one(), shared)),
      latency_1_chain_pool_us: await latencyUs(() => pool.runOnPool('verify-token-chains', one(), shared)),
      latency_8_chains_inline_us: await latencyUs(() => pool.runInline('verify-token-chains', eight(), shared)),
      latency_8_chains_pool_us: await latencyUs(() => pool.runOnPool('verify-token-chains', eight(), shared)),
    };

    const chainRatio = sum.poolChains / sum.mainChains;
    const objectRatio = sum.poolObjects / sum.mainObjects;
    return {
      metrics: {
        token_chains_per_s: mean(sum.poolChains),
        signed_objects_per_s: mean(sum.poolObjects),
        ...latency,
      },
      baseline: {
        token_chains_per_s: mean(sum.mainChains),
        signed_objects_per_s: mean(sum.mainObjects),
        latency_1_chain_pool_us: latency.latency_1_chain_inline_us,
        latency_8_chains_pool_us: latency.latency_8_chains_inline_us,
      },
      ratios: {
        token_chains_per_s: chainRatio,
        signed_objects_per_s: objectRatio,
        latency_1_chain_pool_us: latency.latency_1_chain_pool_us / latency.latency_1_chain_inline_us,
        latency_8_chains_pool_us: latency.latency_8_chains_pool_us / latency.latency_8_chains_inline_us,
      },
      targets: { token_chains_pool_vs_main: target(chainRatio, '>=', 1.6) },
      notes: [
        `${threads} pool threads, batches of ${BATCH}, ${IN_FLIGHT} in flight, mean of ${ROUNDS} alternating slices of ${ms} ms each side; baseline = main thread, same run`,
        `uncached chains: ${TOKENS} distinct 2-token chains, 10 glob grants each; provider node`,
        'latency ratios > 1 mean the thread hop costs more than it saves at that size (single items stay inline)',
      ],
    };
  } finally {
    await pool.close();
  }
};

export default bench;
