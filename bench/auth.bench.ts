import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { CapabilityChecker } from '../runtime/capability/checker.ts';
import type { AccessRequest } from '../runtime/capability/grant.ts';
import { encodeToken } from '../runtime/capability/token.ts';
import { REALISTIC_TOOLS, realisticTokens } from './realistic-token.ts';
import { opsPerCpuSecond, opsPerSecond, percentile, target, type Benchmark } from './harness.ts';

/**
 * `npm run bench -- auth [provider]`: the gateway's per-request authorization, single core.
 * A realistic token: a chain of 2 (root -> agent -> sub-agent), 10 grants with glob
 * constraints on the leaf (each inside one of the root's 10). Baseline, in the same run: a bare
 * Map.get plus one string compare (the least any cache-backed check can do).
 *  - cached: the same compact token string checked again (hash of the string already known)
 *  - cached_fresh_string: a new string object with the same content on each call, as when
 *    the token is parsed out of every decrypted request (V8 hashes the string anew)
 *  - uncached: every check misses the cache and verifies the whole chain (2 signatures)
 * p99 is over per-call times measured in batches of BATCH calls.
 */
const BATCH = 32;

const SAMPLES = 20_000;

const bench: Benchmark = async (args) => {
  const crypto = createCryptoProvider({ name: args[0] ?? 'node' });
  const kit = realisticTokens(crypto);
  const { T0, seed } = kit;
  const tools = REALISTIC_TOOLS;
  const root = kit.root();
  const mkLeaf = (exp: number) => kit.leaf(root, exp);
  const compact = encodeToken(mkLeaf(T0 + 3600));
  const sub = kit.subject;
  const checker = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer] });
  const now = Date.now();
  const requests: AccessRequest[] = tools.map((tool, i) => ({ method: 'tools/call', tool, args: { path: `workspace/project-${i}/src/lib/module-${i}.ts` } }));
  for (const r of requests) if (!checker.check(compact, r, sub, now).ok) throw new Error('bench token refused');

  // --- cached -------------------------------------------------------------------------------
  let k = 0;
  const cached = () => checker.check(compact, requests[k++ % 10]!, sub, now);
  const map = new Map<string, { sub: string }>([[compact, { sub }]]);
  const baseline = () => map.get(compact)!.sub === sub;

  const perCall = (fn: () => unknown): number[] => {
    const out: number[] = [];
    for (let i = 0; i < 2000; i++) fn(); // warm
    for (let s = 0; s < SAMPLES; s++) {
      const t0 = performance.now();
      for (let i = 0; i < BATCH; i++) fn();
      out.push(((performance.now() - t0) * 1e3) / BATCH); // microseconds per call
    }
    return out;
  };

  const cachedOps = opsPerSecond(cached, 1500);
  const baselineOps = opsPerSecond(baseline, 1500);
  const cachedCpuOps = opsPerCpuSecond(cached, 1500, 16, 1000);
  const baselineCpuOps = opsPerCpuSecond(baseline, 1500, 16, 1000);
  const cachedTimes = perCall(cached);
  const baselineTimes = perCall(baseline);

  // --- cached, fresh string each call: the token as JSON.parse yields it from each request ---
  const quoted = JSON.stringify(compact);
  let fk = 0;
  const fresh = () => checker.check(JSON.parse(quoted) as string, requests[fk++ % 10]!, sub, now);
  const freshBaseline = () => map.get(JSON.parse(quoted) as string)!.sub === sub;
  const freshOps = opsPerCpuSecond(fresh, 1000, 16, 1000);
  const baselineFreshOps = opsPerCpuSecond(freshBaseline, 1000, 16, 1000);

  // --- uncached: a one-entry cache and two tokens used alternately: every check verifies ----------
  const a = compact;
  const b = encodeToken(mkLeaf(T0 + 3599));
  const cold = new CapabilityChecker({ crypto, audience: kit.audience, trustedRoots: [kit.rootIssuer], cacheSize: 1 });
  let u = 0;
  const uncached = () => {
    const r = cold.check(u++ % 2 ? a : b, requests[0]!, sub, now);
    if (!r.ok) throw new Error('uncached check refused');
  };
  const uncachedOps = opsPerSecond(uncached, 2000, 1);
  const uncachedCpuOps = opsPerCpuSecond(uncached, 2000, 1, 1000);
  if (cold.stats.cacheHits !== 0) throw new Error('the uncached benchmark hit the cache');
  // The floor of an uncached check: its two Ed25519 verifications alone (public keys cached,
  // as in the checker), over messages of the size of the token's two signed links.
  const linkBytes = Math.ceil(compact.length / 2);
  const floorMessages = [seed(5), seed(6)].map((sk, i) => {
    const message = new Uint8Array(linkBytes).fill(i + 1);
    return { pk: crypto.ed25519PublicKey(sk), message, sig: crypto.ed25519Sign(sk, message) };
  });
  const twoVerifies = () => {
    for (const m of floorMessages) if (!crypto.ed25519Verify(m.pk, m.message, m.sig)) throw new Error('floor verify failed');
  };
  const floorCpuOps = opsPerCpuSecond(twoVerifies, 2000, 1, 1000);

  const p50 = percentile(cachedTimes, 50);
  const p99 = percentile(cachedTimes, 99);
  const bp99 = percentile(baselineTimes, 99);
  return {
    metrics: {
      cached_checks_per_s: cachedOps,
      cached_checks_per_cpu_s: cachedCpuOps,
      cached_p50_us: p50,
      cached_p99_us: p99,
      cached_fresh_string_checks_per_s: freshOps,
      uncached_checks_per_s: uncachedOps,
      uncached_checks_per_cpu_s: uncachedCpuOps,
    },
    baseline: {
      uncached_checks_per_cpu_s: floorCpuOps,
      cached_checks_per_s: baselineOps,
      cached_checks_per_cpu_s: baselineCpuOps,
      cached_p50_us: percentile(baselineTimes, 50),
      cached_p99_us: bp99,
      cached_fresh_string_checks_per_s: baselineFreshOps,
    },
    ratios: {
      uncached_checks_per_cpu_s: uncachedCpuOps / floorCpuOps,
      cached_checks_per_s: cachedOps / baselineOps,
      cached_checks_per_cpu_s: cachedCpuOps / baselineCpuOps,
      cached_p99_us: p99 / bp99,
      cached_fresh_string_checks_per_s: freshOps / baselineFreshOps,
    },
    targets: {
      cached_checks_per_s: target(cachedOps, '>=', 1_500_000),
      cached_p99_us: target(p99, '<=', 5),
      uncached_checks_per_s: target(uncachedOps, '>=', 2_500),
      cached_checks_per_cpu_s: target(cachedCpuOps, '>=', 1_500_000),
      uncached_checks_per_cpu_s: target(uncachedCpuOps, '>=', 2_500),
    },
    notes: [
      `provider ${crypto.name}; token: chain of 2, 10 grants with glob constraints, compact form ${compact.length} characters`,
      `p99 over ${SAMPLES} batches of ${BATCH} calls`,
      '*_per_s: wall clock (harness opsPerSecond); *_per_cpu_s: per second of this process\'s CPU time (valid on a shared, loaded machine)',
      `uncached baseline (per CPU second): the two Ed25519 verifications alone (node:crypto one-shot verify, public KeyObjects cached), over ${Math.ceil(compact.length / 2)}-byte messages: the ceiling of an uncached check; the ratio shows how much of it the rest of the check (parsing, JCS, schema, grants) leaves`,
      'cached_fresh_string (per CPU second): each call first parses the token out of a JSON string (a new, unhashed string, as when it is taken from each request); its baseline does the same parse, then Map.get keyed by the whole string (which must hash all of it) and one compare',
    ],
  };
};

export default bench;
