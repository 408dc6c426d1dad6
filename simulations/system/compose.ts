import { mintToken, encodeToken, type Token } from '../../runtime/capability/token.ts';
import { MemoryRevocationSource, mintRevocation } from '../../runtime/capability/revocation.ts';
import { generateIdentity, type Identity } from '../../runtime/identity/identity.ts';
import { createPrekeyBundle } from '../../runtime/identity/prekeys.ts';
import { utf8 } from '../../runtime/encoding/bytes.ts';
import type { RateRule } from '../../runtime/limits/types.ts';
import { generateKek, Keyring } from '../../runtime/secrets/keyring.ts';
import { MemorySecretStore } from '../../runtime/secrets/store.ts';
import { SecretVault } from '../../runtime/secrets/vault.ts';
import type { PrekeyBundleJson } from '../../runtime/session/bundle.ts';
import { SimRedis } from '../limits.ts';
import type { World } from '../world.ts';
import { SimAgent } from './agent.ts';
import { AUDITOR, SimAuditor } from './auditor.ts';
import { GATEWAY, SimGateway } from './gateway.ts';
import { Truth } from './truth.ts';
import { SimUpstream, UPSTREAM } from './upstream.ts';

/**
 * Builds the standard simulated deployment: N agents, one gateway, its auditor, one upstream
 * MCP server, a "Redis" for limits, a secret vault holding the upstream credential, and a
 * token issuer the gateway trusts. Every key and token comes from the run's seeded provider.
 */
export interface SystemOptions {
  agents: number;
  /** Agents that sometimes present another agent's token (a leaked bearer token). */
  insiders?: number;
  /** Mean time between two calls of one agent. */
  callMeanMs: number;
  /** No new calls after this simulated time (quiet agents excepted: see loadEndsAt). */
  loadUntil: number;
  rateRule?: RateRule;
  budgetLimit?: number;
  /** Lifetime of the agents' tokens (ms); default: longer than any run. */
  tokenTtlMs?: number;
  /** How long before issuance the tokens' `nbf` lies (ms, whole seconds; default 60 s, more than any skew). */
  nbfLeewayMs?: number;
  /**
   * Quiet agents besides the others (named quiet-<i>, after them): each makes `calls` calls,
   * the first within `gapMs` of `startMs`, then `gapMs` to 2 * `gapMs` apart.
   */
  quiet?: { agents: number; startMs: number; gapMs: number; calls: number };
}

/**
 * The latest simulated time a call of the workload can be made: the busy agents stop at
 * `loadUntil`; a quiet agent's n-th call comes at most (2n - 1) * gapMs after its startMs.
 */
export function loadEndsAt(options: SystemOptions): number {
  const q = options.quiet;
  return Math.max(options.loadUntil, q ? q.startMs + (2 * q.calls - 1) * q.gapMs : 0);
}

export const TOOLS = ['read_text_file', 'search'] as const;
export const PATH_PREFIX = 'repo/src';
/** Paths the workload asks for: some inside the grant, some outside, one traversal attempt. */
export const PATHS = ['repo/src/main.ts', 'repo/src/lib/util.ts', 'repo/src/a/b/c.ts', 'repo/README.md', 'etc/passwd', 'repo/src/../../etc/passwd'];
export const DEFAULT_RATE: RateRule = { capacity: 50, refillPerSecond: 50 };
export const DEFAULT_BUDGET = 1_000_000;
export const QUIET_PREFIX = 'quiet-';
const CREDENTIAL_REF = { purpose: 'upstream', id: 'files' };

export interface SimSystem {
  world: World;
  truth: Truth;
  gateway: SimGateway;
  auditor: SimAuditor;
  upstream: SimUpstream;
  agents: SimAgent[];
  redis: SimRedis;
  vault: SecretVault;
  revocations: MemoryRevocationSource;
  issuer: Identity;
  tokens: Map<string, Token>;
  /** The issuer revokes a token; the gateway learns it at once (its source delivers it). `why` goes into the trace. */
  revoke(tokenId: string, why?: string): Promise<void>;
  /** Starts the workload: each agent calls at random until `loadUntil`. */
  startLoad(): void;
  options: SystemOptions;
}

export async function buildSystem(world: World, options: SystemOptions): Promise<SimSystem> {
  const crypto = world.crypto;
  const truth = new Truth(world);
  const issuer = generateIdentity(crypto);
  world.scanner.key(issuer.sig.secretKey, 'issuer signing key');
  const gwIdentity = generateIdentity(crypto);
  const { bundle, secrets } = createPrekeyBundle(crypto, gwIdentity, { spkId: 1, exp: world.clock(GATEWAY) + 365 * 24 * 3600 * 1000 });

  const redis = new SimRedis(() => world.clock('redis'));
  const kek = generateKek(crypto);
  world.scanner.key(kek.key, 'KEK');
  const vault = new SecretVault(crypto, new Keyring([kek]), new MemorySecretStore());
  const credential = `cnry-${world.rng.fork('credential').hex(8)}`;
  world.scanner.canary(credential);
  await vault.put(CREDENTIAL_REF, utf8(credential));

  const auditor = new SimAuditor(world);
  const upstream = new SimUpstream(world, truth, auditor);
  upstream.expectedCredential = credential;
  const revocations = new MemoryRevocationSource();
  const gateway = new SimGateway(
    world,
    truth,
    gwIdentity,
    { spk: { secretKey: secrets.spk.secretKey, publicKey: secrets.spk.publicKey } },
    [issuer.did],
    revocations,
    redis,
    vault,
    { rateRule: options.rateRule ?? DEFAULT_RATE, budgetLimit: options.budgetLimit ?? DEFAULT_BUDGET, credentialRef: CREDENTIAL_REF },
  );
  world.network.configure(GATEWAY, UPSTREAM, { trusted: true });
  world.network.configure(GATEWAY, AUDITOR, { baseMs: 1, jitterMeanMs: 1 });

  const nbfSec = Math.floor((world.clock('issuer') - (options.nbfLeewayMs ?? 60_000)) / 1000);
  const ttl = options.tokenTtlMs ?? 24 * 3600 * 1000;
  const expSec = Math.floor((world.clock('issuer') + ttl) / 1000);
  const agents: SimAgent[] = [];
  const tokens = new Map<string, Token>();
  const names = Array.from({ length: options.agents }, (_, i) => `agent-${i}`);
  for (let i = 0; i < (options.quiet?.agents ?? 0); i++) names.push(`${QUIET_PREFIX}${i}`);
  for (const name of names) {
    const id = generateIdentity(crypto);
    const token = mintToken(crypto, {
      issuerKey: issuer.sig.secretKey,
      sub: id.did,
      aud: gwIdentity.did,
      nbf: nbfSec,
      exp: expSec,
      grants: [
        { method: 'tools/call', tool: 'read_text_file', args: { path: { glob: `${PATH_PREFIX}/**` } } },
        { method: 'tools/call', tool: 'search' },
      ],
    });
    tokens.set(name, token);
    truth.tokens.set(token.id, { id: token.id, sub: id.did, tools: TOOLS, pathPrefix: PATH_PREFIX, nbfMs: nbfSec * 1000, expMs: expSec * 1000 });
    agents.push(new SimAgent(world, truth, name, id, GATEWAY, { bundle: bundle as unknown as PrekeyBundleJson }, world.rng.fork(name)));
  }
  for (const n of [auditor, upstream, gateway, ...agents]) world.add(n);

  const insiders = options.insiders ?? 0;
  const sys: SimSystem = {
    world, truth, gateway, auditor, upstream, agents, redis, vault, revocations, issuer, tokens, options,
    async revoke(tokenId, why) {
      const r = mintRevocation(crypto, issuer.sig.secretKey, tokenId, world.clock('issuer'));
      truth.revoked(tokenId);
      world.trace.fault('revocation', GATEWAY, why === undefined ? `token ${tokenId}` : `token ${tokenId}: ${why}`);
      await revocations.publish(r);
    },
    startLoad() {
      // A token's compact form is a pure function of the token: encoded once, not per call.
      const compact = new Map([...tokens].map(([name, token]) => [name, encodeToken(token)]));
      for (const [name, token] of tokens) truth.tokenIds.set(compact.get(name)!, token.id);
      const busy = agents.filter((a) => !a.name.startsWith(QUIET_PREFIX));
      agents.forEach((agent, i) => {
        const insider = i < busy.length && i >= busy.length - insiders;
        const quiet = i < busy.length ? undefined : options.quiet;
        let made = 0;
        const next = () => {
          if (quiet && made++ === quiet.calls) return;
          const wait = quiet ? (made > 1 ? quiet.gapMs : quiet.startMs) + agent.rng.int(quiet.gapMs) : Math.max(1, Math.round(agent.rng.exponential(options.callMeanMs)));
          if (!quiet && world.scheduler.now + wait > options.loadUntil) return;
          world.scheduler.after(wait, `${agent.name} call`, () => {
            const tool = agent.rng.chance(0.1) ? 'delete_file' : agent.rng.pick(['read_text_file', 'read_text_file', 'search']);
            const args: Record<string, unknown> = tool === 'search' ? { query: `q${agent.rng.int(100)}` } : { path: agent.rng.pick(PATHS) };
            let token = compact.get(agent.name)!;
            if (insider && agents.length > 1 && agent.rng.chance(0.5)) {
              token = compact.get(agent.rng.pick(agents.filter((a) => a !== agent)).name)!;
            }
            agent.call(tool, args, token);
            next();
          });
        };
        next();
      });
    },
  };
  return sys;
}
