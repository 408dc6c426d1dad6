import t from 'tap';
import fc from 'fast-check';
import { providers } from '../crypto/index.ts';
import { fromHex } from '../encoding/bytes.ts';
import type { Json } from '../encoding/json.ts';
import { didFromPublicKey } from '../identity/did.ts';
import { CapabilityChecker } from './checker.ts';
import { CapabilityError } from './errors.ts';
import { compileGlob } from './glob.ts';
import { grantsAttenuate, indexGrants, matchRequest, type AccessRequest, type Constraint, type Grant } from './grant.ts';
import { delegateToken, encodeToken, mintToken } from './token.ts';

/**
 * The attenuation property, on grant sets along chains (10,000 runs) and end to end through mint, delegate and the checker: for random
 * parent grants, child grants (mostly narrowings, some random) and requests, whenever a
 * delegated token allows a request, its parent allows it too. Delegations the engine refuses
 * (escalation or undecided) are counted, never silently accepted.
 */
const T0 = 1_800_000_000;
const NOW = (T0 + 5) * 1000;
const seed = (n: number) => fromHex(n.toString(16).padStart(2, '0').repeat(32));

const POOL: Json[] = [0, 1, 5, 100, true, false, null, 'a', 'x/y', 'repo/src/a.ts', { k: 1 }, [1]];
const NAMES = ['path', 'n', 'mode'];
const METHODS = ['tools/call', 'resources/read'];
const TOOLS = [undefined, '*', 'read', 'write'];

const seg = fc.constantFrom('repo', 'src', 'a.ts', 'b', '*', '**', '*.ts', 'a*');
const glob = fc
  .array(seg, { minLength: 1, maxLength: 4 })
  .map((s) => s.join('/'))
  .filter((g) => typeof compileGlob(g) === 'object');
const value = fc.constantFrom(...POOL);
const constraint: fc.Arbitrary<Constraint> = fc.oneof(
  value.map((eq) => ({ eq })),
  fc.uniqueArray(value, { minLength: 1, maxLength: 4, selector: (v) => JSON.stringify(v) }).map((list) => ({ in: list })),
  glob.map((g) => ({ glob: g })),
  fc.integer({ min: -1, max: 200 }).map((max) => ({ max })),
);
const argsArb = fc.dictionary(fc.constantFrom(...NAMES), constraint, { maxKeys: 2 });
const grant: fc.Arbitrary<Grant> = fc
  .tuple(fc.constantFrom(...METHODS), fc.constantFrom(...TOOLS), fc.option(argsArb, { nil: undefined }))
  .map(([method, tool, args]) => ({ method, ...(tool ? { tool } : {}), ...(args ? { args } : {}) }));

/** Narrows one constraint, or (one time in five) widens it a little: the engine must tell. */
function narrow(c: Constraint, pick: number): Constraint {
  const widen = pick % 5 === 0;
  if ('glob' in c) {
    const options = widen
      ? [c.glob.replace(/^[^/]+/, '*'), c.glob.replace(/[^/]+$/, '**'), `${c.glob}/**`]
      : [c.glob, c.glob.replace('**', 'src/**'), c.glob.replace('**', 'a.ts'), c.glob.replace('*', 'b'), c.glob.replace('*.ts', 'a.ts')];
    const g = options[pick % options.length]!;
    return typeof compileGlob(g) === 'object' ? { glob: g } : c;
  }
  if ('in' in c) return widen ? { in: [...c.in, POOL[pick % POOL.length]!] } : { in: c.in.slice(0, 1 + (pick % c.in.length)) };
  if ('max' in c) return { max: widen ? c.max + 1 : c.max - (pick % 3) };
  return widen ? { eq: POOL[pick % POOL.length]! } : c;
}

const childOf = (parents: Grant[]) =>
  fc.oneof(
    { weight: 3, arbitrary: fc.tuple(fc.nat(), fc.nat(), fc.option(fc.tuple(fc.constantFrom(...NAMES), constraint), { nil: undefined }), fc.constantFrom(...TOOLS)).map(([i, pick, extra, tool]) => {
      const p = parents[i % parents.length]!;
      const args: Record<string, Constraint> = {};
      for (const [name, c] of Object.entries(p.args ?? {})) args[name] = narrow(c, pick);
      if (extra && !(extra[0] in args)) args[extra[0]] = extra[1];
      const t = p.tool === undefined || p.tool === '*' ? tool : p.tool;
      return { method: p.method, ...(t ? { tool: t } : {}), ...(Object.keys(args).length ? { args } : {}) } as Grant;
    }) },
    { weight: 1, arbitrary: grant },
  );

/** A value that satisfies the constraint (when the generator can find one). */
function satisfying(c: Constraint, pick: number): Json {
  if ('eq' in c) return c.eq;
  if ('in' in c) return c.in[pick % c.in.length]!;
  if ('max' in c) return c.max - (pick % 2);
  const fill = ['a.ts', 'src', 'x', 'repo/src'][pick % 4]!;
  return c.glob.split('/').map((s) => (s === '**' ? fill : s.replaceAll('*', 'q'))).join('/');
}

const requestFor = (grants: Grant[]) =>
  fc.tuple(fc.nat(), fc.nat(), fc.constantFrom(...TOOLS), fc.dictionary(fc.constantFrom(...NAMES), fc.oneof(value, glob), { maxKeys: 2 }), fc.boolean()).map(
    ([i, pick, tool, randomArgs, targeted]): AccessRequest => {
      if (!targeted) return { method: METHODS[pick % 2]!, ...(tool && tool !== '*' ? { tool } : {}), args: randomArgs };
      const g = grants[i % grants.length]!;
      const args: Record<string, Json> = { ...randomArgs };
      for (const [name, c] of Object.entries(g.args ?? {})) args[name] = satisfying(c, pick);
      const reqTool = g.tool === undefined || g.tool === '*' ? (tool && tool !== '*' ? tool : 'other') : g.tool;
      return { method: g.method, tool: reqTool, args };
    },
  );

t.test('property (10,000 runs, no crypto): along a delegation chain of grant sets, no link allows what its parent refuses', async (t) => {
  const stats = { links: 0, refused: 0, allowed: 0 };
  const chainArb = fc
    .array(grant, { minLength: 1, maxLength: 4 })
    .chain((g0) => fc.tuple(fc.constant(g0), fc.array(childOf(g0), { minLength: 1, maxLength: 3 })))
    .chain(([g0, g1]) => fc.tuple(fc.constant(g0), fc.constant(g1), fc.array(childOf(g1), { minLength: 1, maxLength: 3 })))
    .chain(([g0, g1, g2]) => fc.tuple(fc.constant([g0, g1, g2]), fc.array(requestFor(g2), { minLength: 6, maxLength: 6 })));
  fc.assert(
    fc.property(chainArb, ([sets, requests]) => {
      // Keep the longest prefix of the chain that the engine accepts (what delegate would mint).
      const chain = [sets[0]!];
      for (let i = 1; i < sets.length; i++) {
        if (grantsAttenuate(chain[i - 1]!, sets[i]!) !== null) {
          stats.refused++;
          break;
        }
        chain.push(sets[i]!);
        stats.links++;
      }
      const indexes = chain.map((g) => indexGrants(g));
      for (const req of requests) {
        for (let i = indexes.length - 1; i > 0; i--) {
          if (typeof matchRequest(indexes[i]!, req) === 'number') {
            stats.allowed++;
            if (typeof matchRequest(indexes[i - 1]!, req) !== 'number') return false;
          }
        }
      }
      return true;
    }),
    { numRuns: 10_000 },
  );
  t.ok(stats.links > 5000, `${stats.links} accepted delegation links, ${stats.refused} refused`);
  t.ok(stats.allowed > 5000, `${stats.allowed} requests allowed by a child were checked against its parent`);
});

for (const crypto of providers()) {
  // End to end through real signatures; the 10,000-run property above covers the logic itself.
  const runs = crypto.name === 'node' ? 600 : 150;
  t.test(`property (${crypto.name}, ${runs} runs): a child token never allows a request its parent refuses`, async (t) => {
    const dids = new Map<number, string>();
    const did = (n: number) => {
      if (!dids.has(n)) dids.set(n, didFromPublicKey(crypto.ed25519PublicKey(seed(n))));
      return dids.get(n)!;
    };
    const checker = new CapabilityChecker({ crypto, audience: did(9), trustedRoots: [did(1)] });
    const stats = { delegated: 0, refused: 0, childAllowed: 0 };
    const scenario = fc
      .array(grant, { minLength: 1, maxLength: 4 })
      .chain((parents) => fc.tuple(fc.constant(parents), fc.array(childOf(parents), { minLength: 1, maxLength: 3 })))
      .chain(([parents, children]) => fc.tuple(fc.constant(parents), fc.constant(children), fc.array(requestFor(children), { minLength: 4, maxLength: 4 })));
    fc.assert(
      fc.property(scenario, ([parents, children, requests]) => {
        const parent = mintToken(crypto, { issuerKey: seed(1), sub: did(2), aud: did(9), grants: parents, nbf: T0, exp: T0 + 60 });
        let child;
        try {
          child = delegateToken(crypto, { parent, issuerKey: seed(2), sub: did(3), grants: children });
        } catch (err) {
          if (err instanceof CapabilityError && (err.code === 'grant_escalation' || err.code === 'grant_unknown')) {
            stats.refused++;
            return true;
          }
          throw err;
        }
        stats.delegated++;
        const p = encodeToken(parent);
        const c = encodeToken(child);
        for (const req of requests) {
          const cr = checker.check(c, req, did(3), NOW);
          if (cr.ok) {
            stats.childAllowed++;
            if (!checker.check(p, req, did(2), NOW).ok) return false;
          } else if (cr.code !== 'no_matching_grant' && cr.code !== 'arg_violation') return false;
        }
        return true;
      }),
      { numRuns: runs },
    );
    t.ok(stats.delegated > runs / 4, `${stats.delegated} delegations accepted, ${stats.refused} refused at mint`);
    t.ok(stats.childAllowed > runs / 4, `${stats.childAllowed} requests allowed by a child were checked against its parent`);
  });
}
