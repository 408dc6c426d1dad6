import type { Actor, InspectionEvent } from 'xstate';
import type { gatewayMachine } from '../../machines/gateway.machine.ts';
import { CapabilityChecker, MemoryRevocationSource, type RevocationSource } from '../../runtime/capability/index.ts';
import { RedisRevocationSource } from '../../runtime/capability/redis-revocations.ts';
import type { TalosConfig } from '../../runtime/config/config.ts';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { generateIdentity, loadKeyFile, normalizeDid, type Identity } from '../../runtime/identity/index.ts';
import { createLimits, type Limits } from '../../runtime/limits/index.ts';
import { TunnelError } from '../../runtime/mcp/errors.ts';
import { FilePinStore } from '../../runtime/mcp/pinning.ts';
import type { GatewayPipeline } from '../../runtime/mcp/pipeline.ts';
import type { TransportFactory } from '../../runtime/mcp/upstream-connection.ts';
import { SqliteSessionStore } from '../../runtime/store/session-sqlite.ts';
import { startGatewayService, supervisedRouter, type RunningGateway } from '../tga/gateway-service.ts';
import { UpstreamActor } from '../upstream/index.ts';
import { GatewayCryptoPool } from '../../workers/gateway-pool.ts';
import { openAuditStore, startGatewayAudit, type GatewayAudit } from './audit.ts';

export { UpstreamRouter } from './router.ts';

/**
 * The stand-alone gateway (`talos gateway`, `talos demo`, benchmarks, tests): builds the
 * services it owns, in order: identity, limits (Redis or in-process, said so in the log), audit
 * log, upstream actors (each connected, its tools pinned), the capability checker and the
 * session store, then starts the one gateway service (actors/tga/gateway-service.ts, the same
 * as the TGA supervises) over them. Stopping the gateway stops the service, then them.
 */
export interface GatewayOptions {
  config: TalosConfig;
  crypto?: CryptoProvider;
  /** Overrides the key file (tests, demo). */
  identity?: Identity;
  /** Replaces an upstream's configured transport, by upstream name (benchmark, tests). */
  transports?: Record<string, TransportFactory>;
  revocations?: RevocationSource;
  /** Session and prekey store path (default: in memory, so sessions do not survive the process). */
  sessionStorePath?: string;
  log?: (line: string) => void;
  now?: () => number;
  /** XState inspection hook for the gateway, upstream and auditor actors (the live inspector). */
  inspect?: (event: InspectionEvent) => void;
}

export interface Gateway {
  url: string;
  did: string;
  identity: Identity;
  crypto: CryptoProvider;
  pipeline: GatewayPipeline;
  audit: GatewayAudit;
  limits: Limits;
  upstreams: UpstreamActor[];
  checker: CapabilityChecker;
  /** The worker threads that verify uncached chains arriving together (started when first needed). */
  cryptoPool: GatewayCryptoPool;
  /** Where revocations come from (Redis when configured: shared by every gateway). */
  revocations: RevocationSource;
  actor: Actor<typeof gatewayMachine>;
  stop(): Promise<void>;
}

export async function startGateway(options: GatewayOptions): Promise<Gateway> {
  const { config } = options;
  const log = options.log ?? (() => {});
  const crypto = options.crypto ?? createCryptoProvider();
  const now = options.now ?? Date.now;
  const identity = options.identity ?? (config.gateway.keyFile ? loadKeyFile(crypto, config.gateway.keyFile) : generateIdentity(crypto));
  if (!options.identity && !config.gateway.keyFile) log('identity: no gateway.keyFile configured, generated a fresh identity (demo only)');

  let limits: Limits | undefined;
  let audit: GatewayAudit | undefined;
  let sessions: SqliteSessionStore | undefined;
  const upstreams: UpstreamActor[] = [];
  let revocations: RevocationSource | undefined = options.revocations;
  let ownedRevocations: RedisRevocationSource | undefined;
  let service: RunningGateway | undefined;
  /** Drift seen before the gateway machine runs is reported to it once it does. */
  const earlyDrift: Parameters<RunningGateway['drift']>[0][] = [];

  const stopServices = async () => {
    await Promise.allSettled(upstreams.map((u) => u.stop()));
    await limits?.close();
    await ownedRevocations?.close();
    await audit?.close();
    await sessions?.close();
    await cryptoPool.close();
  };
  const cryptoPool = new GatewayCryptoPool(config.gateway.cryptoThreads, crypto);

  let checker: CapabilityChecker;
  try {
    limits = createLimits(config.redis ? { redisUrl: config.redis.url, prefix: config.redis.prefix } : {});
    log(
      limits.kind === 'redis'
        ? `limits: Redis at ${redactUrl(config.redis!.url)} (shared by every gateway using it)`
        : 'limits: in-process (no Redis configured): rate limits and budgets apply to this process only',
    );
    audit = startGatewayAudit(
      await openAuditStore(config.audit.store, crypto),
      crypto,
      { origin: config.gateway.name, seed: identity.sig.secretKey },
      {
        onError: (what, err) => log(`audit: ${what} failed: ${(err as Error).message}`),
        hashLeaves: cryptoPool.hashLeaves,
        ...(options.inspect ? { inspect: options.inspect } : {}),
      },
    );
    const a = audit;
    log(`audit: ${config.audit.store.startsWith('postgres') ? 'postgresql' : config.audit.store.startsWith('sqlite:') ? config.audit.store : 'in memory (not durable across restarts)'}`);
    const pins = new FilePinStore(config.pinsFile);
    for (const u of config.upstreams) {
      const transport = options.transports?.[u.name];
      upstreams.push(
        new UpstreamActor({
          config: u,
          breaker: config.breaker,
          pins,
          ...(transport ? { transport } : {}),
          ...(options.inspect ? { inspect: options.inspect } : {}),
          onDrift: (d) => {
            const event = { type: 'gateway.drift', upstream: d.upstream, tool: d.tool } as const;
            if (service) service.drift(event);
            else earlyDrift.push(event);
            log(`drift: upstream ${d.upstream} changed the definition of tool ${d.tool}; it is withheld until re-pinned`);
            void a.append({ ts: now(), kind: 'alert', from: d.upstream, to: identity.did, msg_hash: Buffer.from(d.seen, 'hex').toString('base64url'), ...(safeTool(d.tool) ? { tool: d.tool } : {}), reason: 'tool_drift' }).catch(() => {});
          },
        }),
      );
    }
    await Promise.all(upstreams.map((u) => u.start()));
    for (const u of upstreams) log(`upstream ${u.name}: ${u.tools().length} tools pinned`);
    if (!revocations && config.redis) {
      ownedRevocations = new RedisRevocationSource({ url: config.redis.url, key: `${config.redis.prefix}revocations` });
      await ownedRevocations.ready();
      revocations = ownedRevocations;
      log('revocations: Redis (persisted hash + pub/sub)');
    }
    revocations ??= new MemoryRevocationSource();
    log(cryptoPool.threads > 0 ? `capabilities: uncached chains arriving together are verified on ${cryptoPool.threads} worker thread(s)` : 'capabilities: every chain verified on the event loop (gateway.cryptoThreads = 0)');
    checker = new CapabilityChecker({
      crypto,
      audience: identity.did,
      trustedRoots: config.trustedIssuers.map((d) => normalizeDid(d)),
      revocations,
    });
    const storePath = options.sessionStorePath ?? ':memory:';
    sessions = new SqliteSessionStore({ path: storePath });
    log(storePath === ':memory:' ? 'sessions: in memory (a restarted gateway cannot resume them)' : `sessions: ${storePath} (resumable across restarts)`);
    service = await startGatewayService(
      {
        config: () => config,
        crypto,
        identity,
        authorizer: cryptoPool.authorizer(checker),
        keyAgreement: cryptoPool.keyAgreement,
        audit,
        rate: limits.rate,
        budget: limits.budget,
        router: supervisedRouter(() => upstreams),
        sessions,
        afterStop: stopServices,
        log,
        now,
        ...(options.inspect ? { inspect: options.inspect } : {}),
      },
      (err) => log(`gateway: ${(err as Error).message}`),
      config.gateway.port,
    );
  } catch (err) {
    await stopServices().catch(() => {});
    throw err instanceof TunnelError || (err as { code?: string }).code === 'gateway_start_failed'
      ? err
      : new TunnelError('gateway_start_failed', `the gateway did not start: ${(err as Error).message}`);
  }
  for (const event of earlyDrift.splice(0)) service.drift(event);
  return {
    url: service.url,
    did: identity.did,
    identity,
    crypto,
    pipeline: service.pipeline,
    audit: audit!,
    limits: limits!,
    upstreams,
    checker,
    cryptoPool,
    revocations: revocations!,
    actor: service.actor,
    stop: () => service.stop(),
  };
}

function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.href;
  } catch {
    return 'redis';
  }
}

function safeTool(name: string): boolean {
  return /^[\x21-\x7e]{1,128}$/.test(name);
}
