import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent } from 'xstate';
import { gatewayMachine } from '../../machines/gateway.machine.ts';
import { CapabilityChecker, MemoryRevocationSource, type RevocationSource } from '../../runtime/capability/index.ts';
import { RedisRevocationSource } from '../../runtime/capability/redis-revocations.ts';
import type { TalosConfig } from '../../runtime/config/config.ts';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { parseJson } from '../../runtime/encoding/json.ts';
import { generateIdentity, loadKeyFile, normalizeDid, type Identity } from '../../runtime/identity/index.ts';
import { createLimits, type Limits } from '../../runtime/limits/index.ts';
import { JSONRPC_INVALID_REQUEST, TunnelError } from '../../runtime/mcp/errors.ts';
import { isNotification, isRequest, rpcError, toRpcMessage } from '../../runtime/mcp/jsonrpc.ts';
import { FilePinStore } from '../../runtime/mcp/pinning.ts';
import { GatewayPipeline, internalError, sha256b64u, type RoutedTool, type ToolRouter } from '../../runtime/mcp/pipeline.ts';
import type { TransportFactory } from '../../runtime/mcp/upstream-connection.ts';
import { GatewayResponder } from '../../runtime/net/responder.ts';
import { startTunnelServer, type TunnelServer } from '../../runtime/net/server.ts';
import { SqliteSessionStore } from '../../runtime/store/session-sqlite.ts';
import { UpstreamActor } from '../upstream/index.ts';
import { openAuditStore, startGatewayAudit, type GatewayAudit } from './audit.ts';

/**
 * The gateway actor: binds the gateway machine to real services and serves the tunnel.
 * Start-up order: identity, limits (Redis or in-process, said so in the log), audit log,
 * upstream actors (each connected, its tools pinned), the capability checker, then the
 * listening WebSocket server. Each decrypted request goes through GatewayPipeline.
 */
export interface GatewayOptions {
  config: TalosConfig;
  crypto?: CryptoProvider;
  /** Overrides the key file (tests, demo). */
  identity?: Identity;
  /** Replaces an upstream's configured transport, by upstream name (benchmark, tests). */
  transports?: Record<string, TransportFactory>;
  revocations?: RevocationSource;
  /** Session and prekey store path (default: in memory). */
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
  /** Where revocations come from (Redis when configured: shared by every gateway). */
  revocations: RevocationSource;
  actor: Actor<typeof gatewayMachine>;
  stop(): Promise<void>;
}

type UpstreamCall = (method: string, params: Record<string, unknown> | undefined, signal?: AbortSignal, onProgress?: (progress: Record<string, unknown>) => void) => Promise<Record<string, unknown>>;

/**
 * Routes tool names to upstream actors; on a name offered by two upstreams the first configured
 * wins. `upstreams` may be a getter (a supervisor's current children); `around` wraps every
 * call (the supervised gateway traces it as a span).
 */
export class UpstreamRouter implements ToolRouter {
  private readonly current: () => UpstreamActor[];
  constructor(
    upstreams: UpstreamActor[] | (() => UpstreamActor[]),
    private readonly around?: (upstream: UpstreamActor, tool: string, call: () => Promise<Record<string, unknown>>) => Promise<Record<string, unknown>>,
  ) {
    this.current = typeof upstreams === 'function' ? upstreams : () => upstreams;
  }
  tools(): RoutedTool[] {
    const seen = new Set<string>();
    const out: RoutedTool[] = [];
    for (const u of this.current()) {
      for (const t of u.tools()) {
        if (seen.has(t.name)) continue;
        seen.add(t.name);
        out.push(t as RoutedTool);
      }
    }
    return out;
  }
  resolve(name: string): ReturnType<ToolRouter['resolve']> {
    for (const u of this.current()) {
      const t = u.tool(name);
      if (t) {
        const call: UpstreamCall = this.around
          ? (method, params, signal, onProgress) => this.around!(u, name, () => u.call(method, params, signal, onProgress))
          : (method, params, signal, onProgress) => u.call(method, params, signal, onProgress);
        return { tool: t as RoutedTool, call };
      }
      if (u.isDrifted(name)) return 'drift';
    }
    return undefined;
  }
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
  let server: TunnelServer | undefined;
  let sessions: SqliteSessionStore | undefined;
  const upstreams: UpstreamActor[] = [];
  let pipeline: GatewayPipeline | undefined;
  let checker: CapabilityChecker | undefined;
  let revocations: RevocationSource | undefined = options.revocations;
  let ownedRevocations: RedisRevocationSource | undefined;

  const stopServices = async () => {
    await server?.close();
    await Promise.allSettled(upstreams.map((u) => u.stop()));
    await limits?.close();
    await ownedRevocations?.close();
    await audit?.close();
    sessions?.close();
  };

  const startServices = async () => {
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
      (what, err) => log(`audit: ${what} failed: ${(err as Error).message}`),
      options.inspect,
    );
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
            actor.send({ type: 'gateway.drift', upstream: d.upstream, tool: d.tool });
            log(`drift: upstream ${d.upstream} changed the definition of tool ${d.tool}; it is withheld until re-pinned`);
            void audit!.append({ ts: now(), kind: 'alert', from: d.upstream, to: identity.did, msg_hash: Buffer.from(d.seen, 'hex').toString('base64url'), ...(safeTool(d.tool) ? { tool: d.tool } : {}), reason: 'tool_drift' }).catch(() => {});
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
    checker = new CapabilityChecker({
      crypto,
      audience: identity.did,
      trustedRoots: config.trustedIssuers.map((d) => normalizeDid(d)),
      revocations,
    });
    pipeline = new GatewayPipeline({
      authorizer: checker,
      audit: audit,
      rate: limits.rate,
      budget: limits.budget,
      limits: config.limits,
      router: new UpstreamRouter(upstreams),
      gatewayDid: identity.did,
      serverInfo: { name: config.gateway.name, version: '0.1.0' },
      now,
    });
    sessions = new SqliteSessionStore({ path: options.sessionStorePath ?? ':memory:' });
    const responder = new GatewayResponder(crypto, identity, sessions, { now });
    const p = pipeline;
    const a = audit;
    /** Requests being processed, per session, so a cancellation (or a closed session) can abort them. */
    const inflight = new Map<string, Map<string | number, AbortController>>();
    server = await startTunnelServer({
      host: config.gateway.host,
      port: config.gateway.port,
      responder,
      now,
      handlers: {
        onOpen: async (peer, msgHash) => {
          actor.send({ type: 'gateway.session_opened' });
          await a.append({ ts: now(), kind: 'session_open', from: peer.did, to: identity.did, msg_hash: msgHash });
        },
        onClose: (peer) => {
          for (const c of inflight.get(peer.sid)?.values() ?? []) c.abort();
          inflight.delete(peer.sid);
          actor.send({ type: 'gateway.session_closed' });
          void a.append({ ts: now(), kind: 'session_close', from: peer.did, to: identity.did, msg_hash: sha256b64u(peer.sid) }).catch(() => {});
        },
        onRefused: (code) => actor.send({ type: 'gateway.handshake_refused', code }),
        onMessage: async (peer, text, msgHash, push) => {
          let msg;
          try {
            msg = toRpcMessage(parseJson(text, { allowFloats: true }));
          } catch (err) {
            return JSON.stringify(rpcError(null, JSONRPC_INVALID_REQUEST, `talos: invalid_request: ${(err as Error).message}`));
          }
          if (!isRequest(msg)) {
            // The agent gave up on a request: abort it upstream (the SDK forwards the cancellation).
            if (isNotification(msg) && msg.method === 'notifications/cancelled') {
              const id = msg.params?.requestId;
              if (typeof id === 'string' || typeof id === 'number') inflight.get(peer.sid)?.get(id)?.abort();
            }
            return undefined; // notifications and stray responses need no answer
          }
          let mine = inflight.get(peer.sid);
          if (!mine) inflight.set(peer.sid, (mine = new Map()));
          const controller = new AbortController();
          mine.set(msg.id, controller);
          try {
            const out = await p.handleSealed({ did: peer.did, msgHash, signal: controller.signal, notify: (n) => push(JSON.stringify(n)) }, msg);
            const text = JSON.stringify(out.response);
            if (controller.signal.aborted) {
              // A cancelled request gets no reply (MCP); its outcome is still audited.
              await out.audit?.(sha256b64u(text));
              return undefined;
            }
            if (!out.audit) return text;
            const audit = out.audit;
            // The response is audited under the hash of the envelope that carries it, before it leaves.
            return { text, beforeSend: async (frameHash: string) => {
              const failed = await audit(frameHash);
              return failed ? JSON.stringify(failed) : undefined;
            } };
          } catch (err) {
            return JSON.stringify(internalError(msg.id, err));
          } finally {
            mine.delete(msg.id);
          }
        },
      },
    });
    log(`gateway ${identity.did} listening on ${server.url}`);
  };

  const machine = gatewayMachine.provide({
    actors: {
      startServices: fromPromise(startServices),
      stopServices: fromPromise(stopServices),
    },
  });
  const actor = createActor(machine, { systemId: 'gateway', ...(options.inspect ? { inspect: options.inspect } : {}) });
  actor.start();
  const s = await waitFor(actor, (s) => s.matches('serving') || s.matches('failed'), { timeout: 120_000 });
  if (s.matches('failed')) {
    await stopServices().catch(() => {});
    actor.stop();
    const err = (s as { context: { error?: string } }).context.error;
    throw new TunnelError('gateway_start_failed', `the gateway did not start: ${err}`);
  }
  return {
    url: server!.url,
    did: identity.did,
    identity,
    crypto,
    pipeline: pipeline!,
    audit: audit!,
    limits: limits!,
    upstreams,
    checker: checker!,
    revocations: revocations!,
    actor,
    stop: async () => {
      actor.send({ type: 'gateway.stop' });
      await waitFor(actor, (s) => s.status === 'done', { timeout: 30_000 });
    },
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
