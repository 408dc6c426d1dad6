import type { InspectionEvent } from 'xstate';
import { openAuditStore, startGatewayAudit, type GatewayAudit } from '../actors/gateway/audit.ts';
import { allMachines } from '../actors/machines.ts';
import type { BreakerState } from '../actors/messages.ts';
import { guardedAudit, guardedLimits, type RedisPolicy } from '../actors/tga/breakers.ts';
import { supervisedRouter, startGatewayService, type RunningGateway } from '../actors/tga/gateway-service.ts';
import { MAX_DRIFT_INTERVAL_MS, startTga, type TgaActor } from '../actors/tga/index.ts';
import { serviceChild, StopTracker } from '../actors/tga/service-child.ts';
import { SessionHandle, sessionChild, type SupervisedSessionOptions } from '../actors/tga/session-child.ts';
import { UpstreamActor } from '../actors/upstream/index.ts';
import { acceptsSessions, isReady, type ChildSpec } from '../machines/tga.machine.ts';
import type { RestartPolicy } from '../machines/supervision.ts';
import { CapabilityChecker, MemoryRevocationSource, RedisRevocationSource, type RevocationSource } from './capability/index.ts';
import { loadConfig, type TalosConfig, type UpstreamConfig } from './config/config.ts';
import { createCryptoProvider } from './crypto/index.ts';
import type { CryptoProvider, RandomSource } from './crypto/provider.ts';
import { configDigest, DEFAULT_DRIFT_INTERVAL_MS, DEFAULT_DRIFT_POLICY, diffConfig, MIN_DRIFT_INTERVAL_MS, planDrift, type DriftFinding, type DriftPolicy } from './drift/index.ts';
import { TalosError } from './errors.ts';
import { generateIdentity, loadKeyFile, normalizeDid, type Identity } from './identity/index.ts';
import type { KeyFileCipher } from './identity/key-file.ts';
import { createRecorder, type Recorder } from './inspect/recorder.ts';
import { startInspector, type Inspector } from './inspect/server.ts';
import { createScheduler, kekRotationJob, scheduleTgaJobs, TGA_JOBS, type Scheduler, type TgaJobId } from './jobs/index.ts';
import { budgetWindowResetJob, type BudgetResetState } from './limits/budget-job.ts';
import { connectRedis, MemoryBudgetLedger, MemoryRateLimiter, RedisBudgetLedger, RedisRateLimiter, type BudgetLedger, type RateLimiter } from './limits/index.ts';
import { FilePinStore } from './mcp/pinning.ts';
import { sha256b64u, type Authorizer } from './mcp/pipeline.ts';
import type { TransportFactory } from './mcp/upstream-connection.ts';
import { KEK_ENV, KEK_FILE_ENV, keyFileCipher, loadKeyring, rotateKeyFile, SecretBox, atRestCipher, type Keyring } from './secrets/index.ts';
import type { SecretVault } from './secrets/vault.ts';
import type { AtRestCipher } from './session/ports.ts';
import { SqliteSessionStore } from './store/session-sqlite.ts';
import { GatewayCryptoPool } from '../workers/gateway-pool.ts';
import {
  createMetrics,
  readiness,
  startHealthServer,
  startTelemetry,
  withSpanSync,
  type Check,
  type CheckResult,
  type HealthServer,
  type TalosMetrics,
  type Telemetry,
  type TelemetryOptions,
} from './telemetry/index.ts';

/**
 * The composition root: builds the services the actors need and starts the actor system,
 * whose root is the TGA. With a TalosConfig (`talos`) the TGA supervises the whole tunnel:
 *
 *   TGA ─┬─ auditor            (audit store + auditor actor; behind the `audit` breaker)
 *        ├─ upstream:<name>    (one per configured MCP server; opossum breaker each)
 *        ├─ gateway            (tunnel server + pipeline; refuses new sessions when escalated)
 *        ├─ jobs               (BullMQ with Redis, else in-process: budget windows, checkpoints, KEK rotation)
 *        ├─ session:<id>       (supervised session actors, resumed from their store)
 *        └─ drift monitor      (running vs declared configuration, pinned tools)
 *
 * Shared resources that outlive a child's restart (the Redis client and its breaker, the pin
 * store, the session store, the metrics) are created here and released by `stop()`, after the
 * TGA has stopped every child.
 */
export interface RuntimeConfig {
  /** 'node' (default, or $TALOS_CRYPTO) or 'noble'. */
  crypto?: 'node' | 'noble' | CryptoProvider;
  /** Replaces the OS random source (simulations run on a seeded one). */
  random?: RandomSource;
  /** XState's inspection hook: receives every actor, snapshot and event of the system. */
  inspect?: (event: InspectionEvent) => void;
  /** Serve the live inspector page on loopback (port 0 picks a free one). */
  inspector?: { port?: number; host?: string };

  /** The tunnel to run (a resolved talos.config.json). Without it the runtime is the TGA alone. */
  talos?: TalosConfig;
  /**
   * The declared configuration the drift monitor compares with: a talos.config.json path
   * (re-read at every check) or a function. Default: the configuration given at start.
   */
  declared?: string | (() => TalosConfig | Promise<TalosConfig>);
  /** The gateway's identity (default: `talos.gateway.keyFile`, else a fresh one). */
  identity?: Identity;
  /** Opens a protected identity key file (envelope encryption, runtime/secrets). */
  keyFileCipher?: KeyFileCipher;
  /** Seals session states and prekey secrets in the session store (runtime/secrets). */
  sessionCipher?: AtRestCipher;
  /** Session and prekey store (SQLite file; default in memory). */
  sessionStorePath?: string;
  /** The supervisor's restart budget (default 5 restarts in 60 s). */
  supervision?: RestartPolicy;
  /** Drift checks: interval (default 60 s; 0 disables the timer) and what to do per kind. */
  drift?: { intervalMs?: number; policy?: Partial<DriftPolicy> };
  /** Serve /healthz, /readyz, /metrics (port 0 picks a free one). */
  health?: { port?: number; host?: string };
  /** OpenTelemetry traces (OTLP URL or an exporter of your own). */
  telemetry?: TelemetryOptions;
  /** While Redis is unavailable: refuse (default) or fall back to this process's limits. */
  redisPolicy?: RedisPolicy;
  /** The job runner: false disables it; `everyMs` overrides intervals (tests). */
  jobs?: false | { everyMs?: Partial<Record<TgaJobId, number>>; queueName?: string };
  /** Secrets at rest whose KEK rotation the jobs run. */
  vault?: SecretVault;
  /**
   * The KEK ring for secrets at rest (identity key file, session store). Default: from
   * TALOS_KEK / TALOS_KEK_FILE in `env` (process.env) when set; without one, nothing is sealed.
   */
  keyring?: Keyring;
  env?: NodeJS.ProcessEnv;
  /** Replaces an upstream's configured transport, by name (benchmarks, tests). */
  transports?: Record<string, TransportFactory>;
  revocations?: RevocationSource;
  log?: (line: string) => void;
  now?: () => number;
}

export interface Runtime {
  readonly crypto: CryptoProvider;
  /** The root actor (systemId 'tga'). */
  readonly tga: TgaActor;
  /** The inspector's address when `inspector` was configured. */
  readonly inspectorUrl?: string;
  /** The gateway's WebSocket URL and DID when a tunnel runs. */
  readonly gatewayUrl?: string;
  readonly did?: string;
  readonly identity?: Identity;
  /** The health server's base URL when `health` was configured. */
  readonly healthUrl?: string;
  readonly metrics: TalosMetrics;
  readonly scheduler?: Scheduler;
  /** True while the TGA runs (not escalated) and every child it owns is up. */
  ready(): boolean;
  /** The same checks /readyz runs. */
  readiness(): Promise<{ ready: boolean; checks: Record<string, CheckResult> }>;
  /** The running upstream actor of that name (changes when the TGA restarts it). */
  upstream(name: string): UpstreamActor | undefined;
  /** The running auditor and its log (changes when the TGA restarts it). */
  audit(): GatewayAudit | undefined;
  /** The configuration the runtime runs now (after reconciliations). */
  config(): TalosConfig | undefined;
  /** Restarts one child (an operator's reload; not counted against the restart budget). Resolves when it is up. */
  restart(id: string): Promise<void>;
  /** Runs a drift check now; resolves with its findings. */
  checkDrift(): Promise<DriftFinding[]>;
  /** Starts a session actor under the TGA's supervision (restarted from its store on a crash). */
  superviseSession(options: SupervisedSessionOptions & { id?: string }): SessionHandle;
  /** Stops every actor and releases every resource; resolves when done. Idempotent. */
  stop(): Promise<void>;
}

/** How long createRuntime waits for every child to come up. */
export const START_TIMEOUT_MS = 60_000;

const upstreamChildId = (name: string) => `upstream:${name}`;

export async function buildRuntime(config: RuntimeConfig = {}): Promise<Runtime> {
  const crypto =
    typeof config.crypto === 'object'
      ? config.crypto
      : createCryptoProvider({
          ...(config.crypto ? { name: config.crypto } : {}),
          ...(config.random ? { random: config.random } : {}),
        });
  const log = config.log ?? (() => {});
  const now = config.now ?? Date.now;
  const releasers: Array<() => void | Promise<void>> = [];
  const metrics = createMetrics();
  let recorder: Recorder | undefined;
  let inspector: Inspector | undefined;
  let telemetry: Telemetry | undefined;
  let health: HealthServer | undefined;
  const cleanup = async () => {
    for (const r of releasers.splice(0).reverse()) await Promise.resolve(r()).catch(() => {});
  };
  try {
    if (config.telemetry) {
      telemetry = startTelemetry(config.telemetry);
      const t = telemetry;
      releasers.push(() => t.shutdown());
    }
    if (config.inspector) {
      recorder = createRecorder();
      inspector = await startInspector({ ...config.inspector, recorder, machines: allMachines() });
      const i = inspector;
      releasers.push(() => i.close());
    }
  } catch (err) {
    await cleanup();
    throw err;
  }
  const inspect = chainInspectors(recorder?.inspect, config.inspect);
  const stops = new StopTracker();
  let tunnel: Awaited<ReturnType<typeof buildTunnel>> | undefined;
  try {
    tunnel = config.talos ? await buildTunnel(config, config.talos, { crypto, log, now, metrics, stops, releasers, inspect }) : undefined;
  } catch (err) {
    await cleanup();
    throw err;
  }

  // The TGA is created after the services' shared parts, before its children start.
  let tga: TgaActor;
  const handles = new Map<string, SessionHandle>();
  let sessionSeq = 0;
  try {
    tga = startTga(
      {
        release: () => {},
        onEscalation: (child, code) => log(`tga: restart budget spent (${child}: ${code}); not ready, no new sessions`),
        onRestart: (child, code) => {
          metrics.restarts.inc({ child: child.startsWith('session:') ? 'session' : child });
          log(`tga: restarted ${child} after ${code}`);
        },
        onBreaker: (name, state) => {
          metrics.setBreakerState(name, state === 'half-open' ? 'halfOpen' : state);
          // A transition is an event in the trace of whatever was running, or a span of its own.
          withSpanSync('talos.breaker', { 'talos.breaker.name': name, 'talos.breaker.state': state }, () => {});
          log(`breaker ${name}: ${state}`);
        },
        onDrift: (findings) => tunnel?.onDrift(findings),
        children: {
          ...(tunnel?.children ?? {}),
          session: sessionChild(stops, (id) => {
            handles.delete(id);
            tga.send({ type: 'child.remove', id });
          }, inspect),
        },
        ...(tunnel ? { checkDrift: tunnel.checkDrift, driftIntervalMs: config.drift?.intervalMs ?? DEFAULT_DRIFT_INTERVAL_MS } : {}),
      },
      {
        ...(inspect ? { inspect } : {}),
        input: {
          children: tunnel?.specs ?? [],
          ...(config.supervision ? { policy: config.supervision } : {}),
          now,
        },
      },
    );
  } catch (err) {
    await cleanup();
    throw err;
  }
  tunnel?.bind(tga);

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (tga.getSnapshot().status === 'active') {
        // Front door first: no new requests while the rest shuts down.
        for (const id of ['gateway', 'jobs']) {
          if (id in tga.getSnapshot().context.specs) {
            tga.send({ type: 'child.remove', id });
            await stops.settled(id);
          }
        }
        tga.send({ type: 'tga.stop' });
      }
      tga.stop();
      await stops.drain();
      await health?.close().catch(() => {});
      await cleanup();
    })();
    return stopping;
  };

  if (tunnel) {
    const started = await waitUntilStarted(tga);
    if (started !== 'ready') {
      const snap = tga.getSnapshot();
      await stop();
      const why = snap.context.escalation ? `${snap.context.escalation.child}: ${snap.context.escalation.code}` : 'timeout';
      throw new TalosError('runtime_start_failed', `the runtime did not start (${why})`);
    }
  }

  const checks = tunnel ? tunnel.checks(tga) : { restart_budget: restartBudgetCheck(tga) };
  if (config.health) {
    try {
      health = await startHealthServer({ ...config.health, checks, metrics, live: () => tga.getSnapshot().status === 'active' });
    } catch (err) {
      await stop();
      throw err;
    }
  }
  metrics.ready.set(isReady(tga.getSnapshot()) ? 1 : 0);
  tga.subscribe((s) => metrics.ready.set(isReady(s) ? 1 : 0));

  return {
    crypto,
    tga,
    metrics,
    ...(inspector ? { inspectorUrl: inspector.url } : {}),
    ...(tunnel ? { gatewayUrl: tunnel.url(), did: tunnel.identity.did, identity: tunnel.identity } : {}),
    ...(tunnel?.scheduler ? { scheduler: tunnel.scheduler } : {}),
    ...(health ? { healthUrl: health.url } : {}),
    ready: () => isReady(tga.getSnapshot()),
    readiness: () => readiness(checks),
    upstream: (name) => tunnel?.upstreams.get(name),
    audit: () => tunnel?.audit(),
    config: () => tunnel?.running(),
    restart: async (id) => {
      if (!(id in tga.getSnapshot().context.specs)) throw new TalosError('unknown_child', `no child ${id}`);
      tga.send({ type: 'child.restart', id });
      await waitForSnapshot(tga, (s) => s.context.children[id]?.status !== 'starting', START_TIMEOUT_MS);
    },
    checkDrift: async () => {
      const before = tga.getSnapshot().context.drift.checks;
      tga.send({ type: 'drift.check' });
      const s = await waitForSnapshot(tga, (s) => s.context.drift.checks > before, START_TIMEOUT_MS);
      return s.context.drift.findings;
    },
    superviseSession(options) {
      const id = options.id ?? `session:${++sessionSeq}`;
      if (handles.has(id)) throw new TalosError('session_exists', `a supervised session ${id} exists`);
      const handle = new SessionHandle(id, options);
      handles.set(id, handle);
      tga.send({ type: 'child.add', spec: { id, kind: 'session', src: 'session', input: { id, handle }, reportsUp: true } });
      if (!(id in tga.getSnapshot().context.specs)) {
        handles.delete(id);
        throw new TalosError('not_ready', 'the runtime takes no new sessions (not running)');
      }
      return handle;
    },
    stop,
  };
}

type TgaSnapshot = ReturnType<TgaActor['getSnapshot']>;

function waitForSnapshot(tga: TgaActor, predicate: (s: TgaSnapshot) => boolean, timeoutMs: number): Promise<TgaSnapshot> {
  return new Promise((resolve, reject) => {
    const current = tga.getSnapshot();
    if (predicate(current)) return resolve(current);
    const timer = setTimeout(() => {
      sub.unsubscribe();
      reject(new TalosError('timeout', 'the TGA did not reach the expected state in time'));
    }, timeoutMs);
    const sub = tga.subscribe((s) => {
      if (!predicate(s)) return;
      clearTimeout(timer);
      sub.unsubscribe();
      resolve(s);
    });
  });
}

async function waitUntilStarted(tga: TgaActor): Promise<'ready' | 'escalated' | 'timeout'> {
  try {
    const s = await waitForSnapshot(tga, (s) => isReady(s) || s.value !== 'running' || s.status !== 'active', START_TIMEOUT_MS);
    return isReady(s) ? 'ready' : 'escalated';
  } catch {
    return 'timeout';
  }
}

/** `restart_budget`: fails once the TGA has escalated (or stopped). */
function restartBudgetCheck(tga: TgaActor): Check {
  return () => {
    const s = tga.getSnapshot();
    if (s.status !== 'active') return { ok: false, detail: 'stopped' };
    if (s.value !== 'running') {
      const e = s.context.escalation;
      return { ok: false, detail: `restart budget spent${e ? ` (${e.child}: ${e.code})` : ''}` };
    }
    return { ok: true };
  };
}

/** A supervised child is up (not starting after a restart, not down). */
function childCheck(tga: TgaActor, id: string): Check {
  return () => {
    const c = tga.getSnapshot().context.children[id];
    return c?.status === 'up' ? { ok: true } : { ok: false, detail: `${id} ${c?.status ?? 'absent'}` };
  };
}

interface TunnelContext {
  crypto: CryptoProvider;
  log: (line: string) => void;
  now: () => number;
  metrics: TalosMetrics;
  stops: StopTracker;
  releasers: Array<() => void | Promise<void>>;
  inspect: ((event: InspectionEvent) => void) | undefined;
}

/** The tunnel's services, child logic and checks, around one TalosConfig. */
async function buildTunnel(config: RuntimeConfig, initial: TalosConfig, ctx: TunnelContext) {
  const { crypto, log, now, metrics, stops, releasers } = ctx;
  let tga: TgaActor | undefined;
  const toTga = (name: string, state: BreakerState) => {
    tga?.send({ type: 'breaker.state', name, state });
    // The audit store failing is a fault of the auditor: the TGA restarts it (under the budget),
    // which reopens the store; the half-open breaker then lets a trial append through.
    if (name === 'audit' && state === 'open') failAuditor?.(new TalosError('audit_store_failed', 'the audit store failed; restarting the auditor'));
  };
  let running: TalosConfig = structuredClone(initial);
  // Secrets at rest: a KEK ring from the config or the environment seals the key file and the session store.
  const env = config.env ?? process.env;
  const keyring = config.keyring ?? (env[KEK_ENV] || env[KEK_FILE_ENV] ? loadKeyring(crypto, { env }) : undefined);
  const box = keyring ? new SecretBox(crypto, keyring) : undefined;
  const fileCipher = config.keyFileCipher ?? (box ? keyFileCipher(box) : undefined);
  const identity = config.identity ?? (initial.gateway.keyFile ? loadIdentity(crypto, initial.gateway.keyFile, fileCipher) : generateIdentity(crypto));
  if (!config.identity && !initial.gateway.keyFile) log('identity: no gateway.keyFile configured, generated a fresh identity');
  const policy: DriftPolicy = { ...DEFAULT_DRIFT_POLICY, ...(config.drift?.policy ?? {}) };
  const interval = config.drift?.intervalMs;
  if (interval !== undefined && interval !== 0 && (!Number.isInteger(interval) || interval < MIN_DRIFT_INTERVAL_MS || interval > MAX_DRIFT_INTERVAL_MS)) {
    throw new TalosError('config_invalid', `drift.intervalMs must be 0 or an integer from ${MIN_DRIFT_INTERVAL_MS} to ${MAX_DRIFT_INTERVAL_MS}`);
  }

  // Redis (limits) behind its breaker, or this process's limits.
  let rate: RateLimiter;
  let budget: BudgetLedger;
  let redisPing: (() => Promise<boolean>) | undefined;
  let redisBreakerOpen = () => false;
  if (initial.redis) {
    const client = connectRedis(initial.redis.url);
    const prefix = { prefix: initial.redis.prefix };
    const guarded = guardedLimits(
      { rate: new RedisRateLimiter(client, prefix), budget: new RedisBudgetLedger(client, prefix) },
      initial.breaker,
      config.redisPolicy ?? 'fail-closed',
      toTga,
    );
    rate = guarded.rate;
    budget = guarded.budget;
    redisPing = async () => client.status === 'ready' && (await client.ping()) === 'PONG';
    redisBreakerOpen = () => guarded.breaker.opened;
    releasers.push(async () => {
      guarded.shutdown();
      await client.quit().catch(() => {});
      client.disconnect();
    });
    log(`limits: Redis (policy while it is down: ${config.redisPolicy ?? 'fail-closed'})`);
  } else {
    rate = new MemoryRateLimiter();
    budget = new MemoryBudgetLedger();
    releasers.push(() => Promise.all([rate.close(), budget.close()]).then(() => {}));
  }

  // Revocations, the capability checker (swapped when trusted issuers are reconciled).
  let revocations = config.revocations;
  if (!revocations && initial.redis) {
    const r = new RedisRevocationSource({ url: initial.redis.url, key: `${initial.redis.prefix}revocations` });
    releasers.push(() => r.close());
    await r.ready();
    revocations = r;
  }
  revocations ??= new MemoryRevocationSource();
  const makeChecker = (issuers: string[]) =>
    new CapabilityChecker({ crypto, audience: identity.did, trustedRoots: issuers.map((d) => normalizeDid(d)), revocations: revocations! });
  // Uncached chains arriving together are verified on worker threads (started when first needed).
  const cryptoPool = new GatewayCryptoPool(initial.gateway.cryptoThreads, crypto);
  releasers.push(() => cryptoPool.close());
  let pooled = cryptoPool.authorizer(makeChecker(initial.trustedIssuers));
  const authorizer: Authorizer = { check: (...args) => pooled.check(...args), warm: (token) => pooled.warm?.(token) };

  // Shared stores: pins, sessions.
  const pins = new FilePinStore(initial.pinsFile);
  const sessionCipher = config.sessionCipher ?? (box ? atRestCipher(box) : undefined);
  const sessions = new SqliteSessionStore({ path: config.sessionStorePath ?? ':memory:', ...(sessionCipher ? { cipher: sessionCipher } : {}) });
  if (box) log(`secrets at rest: sealed under KEK ${box.keyring.primaryId} (${keyring!.ids().length} live)`);
  releasers.push(() => sessions.close());

  // The running children's services.
  let audit: GatewayAudit | undefined;
  const upstreams = new Map<string, UpstreamActor>();
  let gateway: RunningGateway | undefined;
  let boundPort: number | undefined;
  const guardedSink = guardedAudit(() => audit, initial.breaker, toTga);
  releasers.push(() => guardedSink.shutdown());

  const appendAlert = (reason: string, subject: string, tool?: string) =>
    void guardedSink.sink
      .append({ ts: now(), kind: 'alert', from: identity.did, to: identity.did, msg_hash: sha256b64u(subject), reason, ...(tool && /^[\x21-\x7e]{1,128}$/.test(tool) ? { tool } : {}) })
      .catch(() => {});

  // The running auditor's fault switch: an audit breaker that opens restarts the auditor.
  let failAuditor: ((error: unknown) => void) | undefined;
  const auditorChild = serviceChild<{ id: string }>(
    'auditor',
    async (_input, fail) => {
      failAuditor = fail;
      const store = await openAuditStore(running.audit.store, crypto);
      const a = startGatewayAudit(
        store,
        crypto,
        { origin: running.gateway.name, seed: identity.sig.secretKey },
        {
          onError: (what, err) => log(`audit: ${what} failed: ${(err as Error).message}`),
          hashLeaves: cryptoPool.hashLeaves,
          ...(ctx.inspect ? { inspect: ctx.inspect } : {}),
        },
      );
      a.auditor.actor.subscribe({ error: (err) => fail(err) });
      audit = a;
      return {
        stop: async () => {
          if (audit === a) audit = undefined;
          await a.close();
        },
      };
    },
    stops,
  );

  const upstreamChild = serviceChild<{ id: string; config: UpstreamConfig }>(
    'upstream',
    async ({ config: u }, fail) => {
      const transport = config.transports?.[u.name];
      const actor = new UpstreamActor({
        config: u,
        breaker: running.breaker,
        pins,
        ...(transport ? { transport } : {}),
        ...(ctx.inspect ? { inspect: ctx.inspect } : {}),
        onDrift: (d) => {
          log(`drift: upstream ${d.upstream} changed the definition of tool ${d.tool}; it is withheld until re-pinned`);
          appendAlert('tool_drift', `${d.upstream}/${d.tool}:${d.seen}`, d.tool);
        },
        onBreakerState: (state) => toTga(upstreamChildId(u.name), state),
        onFault: (code) => fail(new TalosError(code, `upstream ${u.name} failed`)),
      });
      try {
        await actor.start();
      } catch (err) {
        await actor.stop().catch(() => {});
        throw err;
      }
      upstreams.set(u.name, actor);
      toTga(upstreamChildId(u.name), 'closed');
      log(`upstream ${u.name}: ${actor.tools().length} tools pinned`);
      return {
        stop: async () => {
          if (upstreams.get(u.name) === actor) upstreams.delete(u.name);
          await actor.stop();
        },
      };
    },
    stops,
  );

  const gatewayChild = serviceChild<{ id: string }>(
    'gateway',
    async (_input, fail) => {
      const g = await startGatewayService(
        {
          config: () => running,
          crypto,
          identity,
          authorizer,
          keyAgreement: cryptoPool.keyAgreement,
          audit: guardedSink.sink,
          rate,
          budget,
          router: supervisedRouter(() => running.upstreams.map((u) => upstreams.get(u.name)).filter((u): u is UpstreamActor => u !== undefined)),
          sessions,
          accepting: () => (tga ? acceptsSessions(tga.getSnapshot()) : false),
          metrics,
          log,
          now,
          ...(ctx.inspect ? { inspect: ctx.inspect } : {}),
        },
        fail,
        boundPort ?? running.gateway.port,
      );
      // A restarted gateway comes back on the same port (clients reconnect to the same URL).
      boundPort = g.port;
      gateway = g;
      return {
        stop: async () => {
          if (gateway === g) gateway = undefined;
          await g.stop();
        },
      };
    },
    stops,
  );

  // The job runner.
  let scheduler: Scheduler | undefined;
  // Outlives a restart of the jobs child: a window this process reset is not reset again.
  const budgetResets: BudgetResetState = { lastWindowStart: -1 };
  const jobsChild = serviceChild<{ id: string }>(
    'jobs',
    async () => {
      const jobs = config.jobs || {};
      const s = createScheduler({
        ...(running.redis ? { redisUrl: running.redis.url, prefix: `${running.redis.prefix}jobs` } : {}),
        ...(jobs.queueName ? { queueName: jobs.queueName } : {}),
      });
      const budgetWindow = running.limits.budget;
      // The reset job runs every minute (every window when shorter) and resets on the first slot
      // of each epoch-aligned window (SPEC 9.6): a window of up to 366 days fits the scheduler's
      // 30-day interval bound.
      const windowMs = budgetWindow ? budgetWindow.windowSeconds * 1000 : 0;
      const resetEveryMs = Math.min(TGA_JOBS.budgetWindowReset.everyMs, windowMs);
      const handlers = {
        checkpointPublish: () => audit?.auditor.checkpointNow(),
        signedPrekeyRotation: async () => void (await gateway?.responder.rotateSignedPrekey()),
        oneTimePrekeyReplenish: async () => void (await gateway?.responder.replenishOneTimePrekeys()),
        ...(budgetWindow ? { budgetWindowReset: budgetWindowResetJob(budget, budgetWindow.windowSeconds, resetEveryMs, budgetResets) } : {}),
        ...(config.vault || box
          ? {
              kekRotation: kekRotation(config.vault, box, initial.gateway.keyFile, crypto, () => {
                if (sessionCipher && 'rewrap' in sessionCipher) sessions.rewrapAll(sessionCipher.rewrap as (sealed: Uint8Array, context: string) => Uint8Array);
              }),
            }
          : {}),
      };
      const everyMs = { ...(jobs.everyMs ?? {}), ...(budgetWindow ? { budgetWindowReset: resetEveryMs } : {}) };
      try {
        await scheduleTgaJobs(s, handlers, everyMs);
        await s.start();
      } catch (err) {
        // A failed start must release the scheduler: BullMQ's Redis connection would stay open
        // (one more at every restart) and keep the process alive.
        await s.stop().catch(() => {});
        throw err;
      }
      scheduler = s;
      return {
        stop: async () => {
          if (scheduler === s) scheduler = undefined;
          await s.stop();
        },
      };
    },
    stops,
  );
  metrics.addCollector(async () => {
    if (!scheduler) return;
    const d = await scheduler.depth();
    metrics.queueDepth.set({ queue: 'jobs' }, d.waiting + d.active + d.delayed);
  });

  const specs: ChildSpec[] = [
    { id: 'auditor', kind: 'auditor', src: 'auditor', input: { id: 'auditor' }, reportsUp: true },
    ...initial.upstreams.map((u): ChildSpec => ({ id: upstreamChildId(u.name), kind: 'upstream', src: 'upstream', input: { id: upstreamChildId(u.name), config: u }, reportsUp: true })),
    { id: 'gateway', kind: 'gateway', src: 'gateway', input: { id: 'gateway' }, reportsUp: true },
    ...(config.jobs === false ? [] : [{ id: 'jobs', kind: 'jobs', src: 'jobs', input: { id: 'jobs' }, reportsUp: true } satisfies ChildSpec]),
  ];

  const declared = async (): Promise<TalosConfig> => {
    const d = config.declared;
    if (d === undefined) return initial;
    if (typeof d === 'string') return loadConfig(d);
    return d();
  };

  /** One drift check: compare, reconcile what the policy says, report the rest. */
  const checkDrift = async () => {
    const want = await declared();
    // Servers need not announce list changes: re-list every upstream's tools.
    await Promise.all([...upstreams.values()].map((u) => u.refreshTools().catch(() => {})));
    const toolDrift = [...upstreams.values()].flatMap((u) => u.drift());
    const findings = planDrift(diffConfig(running, want), toolDrift, policy);
    for (const [i, f] of findings.entries()) {
      if (f.action !== 'reconciled') continue;
      if (f.kind === 'tool') {
        const [name, tool] = [f.subject.slice(0, f.subject.indexOf('/')), f.subject.slice(f.subject.indexOf('/') + 1)];
        const report = toolDrift.find((d) => d.upstream === name && d.tool === tool);
        if (report) pins.set(name, tool, report.seen);
        await upstreams.get(name)?.refreshTools().catch(() => {});
      } else if (f.subject === 'trustedIssuers') {
        pooled = cryptoPool.authorizer(makeChecker(want.trustedIssuers));
        running = { ...running, trustedIssuers: [...want.trustedIssuers] };
      } else if (f.subject === 'limits') {
        running = { ...running, limits: structuredClone(want.limits) };
      } else if (f.subject.startsWith('upstreams.')) {
        // Not while the TGA takes no new child (escalated): the upstream would be removed for
        // good. Reported instead; the first check after tga.resume reconciles it.
        if (!tga || !acceptsSessions(tga.getSnapshot())) {
          findings[i] = { ...f, action: 'reported' };
          continue;
        }
        const name = f.subject.slice('upstreams.'.length);
        const id = upstreamChildId(name);
        if (id in tga.getSnapshot().context.specs) {
          tga.send({ type: 'child.remove', id });
          await stops.settled(id);
        }
        const next = want.upstreams.find((u) => u.name === name);
        if (next) {
          tga.send({ type: 'child.add', spec: { id, kind: 'upstream', src: 'upstream', input: { id, config: next }, reportsUp: true } });
          // Escalated meanwhile: the child was not added; `running` keeps the old entry, so the
          // next check sees the difference and reconciles again.
          if (!(id in tga.getSnapshot().context.specs)) {
            findings[i] = { ...f, action: 'reported' };
            continue;
          }
        }
        const others = running.upstreams.filter((u) => u.name !== name);
        running = { ...running, upstreams: next ? [...others, next] : others };
      }
    }
    return { findings, digest: configDigest(running) };
  };

  const onDrift = (findings: DriftFinding[]) => {
    for (const f of findings) {
      log(`drift: ${f.kind} ${f.subject} ${f.action} (running ${f.running ?? 'absent'}, declared ${f.declared ?? 'absent'})`);
      appendAlert(f.action === 'reconciled' ? `${f.kind}_drift_reconciled` : `${f.kind}_drift`, `${f.subject}:${f.running ?? ''}:${f.declared ?? ''}`);
    }
  };

  const breakerOf = (tgaActor: TgaActor, name: string) => tgaActor.getSnapshot().context.breakers[name] ?? 'closed';
  const childUp = (tgaActor: TgaActor, id: string) => tgaActor.getSnapshot().context.children[id]?.status === 'up';

  return {
    identity,
    upstreams,
    get scheduler() {
      return scheduler;
    },
    specs,
    children: { auditor: auditorChild, upstream: upstreamChild, gateway: gatewayChild, jobs: jobsChild },
    url: () => gateway?.url,
    audit: () => audit,
    running: () => running,
    checkDrift,
    onDrift,
    bind(t: TgaActor) {
      tga = t;
    },
    checks(t: TgaActor): Record<string, Check> {
      const checks: Record<string, Check> = {
        restart_budget: restartBudgetCheck(t),
        gateway: childCheck(t, 'gateway'),
        store: () => {
          if (!childUp(t, 'auditor')) return { ok: false, detail: 'auditor down' };
          const b = breakerOf(t, 'audit');
          return b === 'open' ? { ok: false, detail: 'audit breaker open' } : { ok: true };
        },
        upstreams: () => {
          const bad = running.upstreams
            .map((u) => {
              if (!childUp(t, upstreamChildId(u.name))) return `${u.name} down`;
              const b = breakerOf(t, upstreamChildId(u.name));
              if (b === 'open') return `${u.name} breaker open`;
              // Connected, or reconnecting after its server went away (backoff, connecting).
              const state = upstreams.get(u.name)?.state;
              return state === 'ready' || state === 'refreshing' ? undefined : `${u.name} ${state ?? 'absent'}`;
            })
            .filter((x): x is string => x !== undefined);
          return bad.length === 0 ? { ok: true } : { ok: false, detail: bad.join(', ').slice(0, 200) };
        },
      };
      if (redisPing) {
        const ping = redisPing;
        checks.redis = async () => {
          if (redisBreakerOpen() || breakerOf(t, 'redis') === 'open') return { ok: false, detail: 'redis breaker open' };
          return (await ping().catch(() => false)) ? { ok: true } : { ok: false, detail: 'redis unreachable' };
        };
      }
      if (config.jobs !== false) {
        checks.jobs = () => {
          if (!childUp(t, 'jobs') || !scheduler) return { ok: false, detail: 'job runner down' };
          return scheduler.isHealthy() ? { ok: true } : { ok: false, detail: 'job store unreachable' };
        };
      }
      return checks;
    },
  };
}

/** A key file in clear, or sealed under the KEK ring (its protection says which). */
function loadIdentity(crypto: CryptoProvider, path: string, cipher: KeyFileCipher | undefined): Identity {
  try {
    return loadKeyFile(crypto, path);
  } catch (err) {
    if ((err as { code?: unknown }).code !== 'key_file_protection') throw err;
    if (!cipher) throw new TalosError('kek_unknown', `${path} is sealed: set ${KEK_ENV} or ${KEK_FILE_ENV}`);
    return loadKeyFile(crypto, path, { cipher });
  }
}

/**
 * KEK rotation: the vault's records re-wrapped and old KEKs retired; the key file re-sealed and
 * the session store's states and prekey secrets re-wrapped under the primary.
 */
function kekRotation(
  vault: SecretVault | undefined,
  box: SecretBox | undefined,
  keyFile: string | undefined,
  crypto: CryptoProvider,
  rewrapSessions: () => void,
) {
  const vaultJob = vault ? kekRotationJob(vault) : undefined;
  return async (run: Parameters<ReturnType<typeof kekRotationJob>>[0]) => {
    rewrapSessions();
    // A key file that does not open fails the job here, before the vault retires any KEK.
    if (box && keyFile) rotateKeyFile(crypto, keyFile, box);
    await vaultJob?.(run);
  };
}

function chainInspectors(
  ...hooks: Array<((event: InspectionEvent) => void) | undefined>
): ((event: InspectionEvent) => void) | undefined {
  const present = hooks.filter((h): h is (event: InspectionEvent) => void => h !== undefined);
  if (present.length <= 1) return present[0];
  return (event) => present.forEach((h) => h(event));
}
