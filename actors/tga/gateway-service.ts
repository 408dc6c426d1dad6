import { context as otelContext, trace, type Span } from '@opentelemetry/api';
import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent } from 'xstate';
import { gatewayMachine, type GatewayEvent } from '../../machines/gateway.machine.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';
import type { TalosConfig } from '../../runtime/config/config.ts';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { parseJson } from '../../runtime/encoding/json.ts';
import { TalosError } from '../../runtime/errors.ts';
import type { Identity } from '../../runtime/identity/index.ts';
import type { BudgetLedger, RateLimiter } from '../../runtime/limits/index.ts';
import { JSONRPC_INVALID_REQUEST } from '../../runtime/mcp/errors.ts';
import { isNotification, isRequest, rpcError, toRpcMessage, type RpcRequest, type RpcResponse } from '../../runtime/mcp/jsonrpc.ts';
import { GatewayPipeline, internalError, sha256b64u, type AuditSink, type Authorizer, type ToolRouter } from '../../runtime/mcp/pipeline.ts';
import { SessionChannel } from '../../runtime/net/channel.ts';
import { GatewayResponder, type Offer, type ResponderStore } from '../../runtime/net/responder.ts';
import { startTunnelServer, type TunnelPeer, type TunnelReply, type TunnelServer, type TunnelSessionStore } from '../../runtime/net/server.ts';
import type { Envelope, Session } from '../../runtime/session/index.ts';
import type { KeyAgreement } from '../../runtime/session/responder.ts';
import { SPANS, tracingEnabled, withSpan, withSpanSync, type TalosMetrics } from '../../runtime/telemetry/index.ts';
import type { UpstreamActor } from '../upstream/index.ts';
import { UpstreamRouter } from '../gateway/router.ts';
import type { RunningService } from './service-child.ts';

/**
 * The gateway service, the one request path of every gateway (`talos gateway` through
 * actors/gateway's startGateway, and `talos run` supervised by the TGA): the tunnel server and
 * the request pipeline over services it is given (the auditor and the upstreams are reached
 * through indirections, so a restarted sibling is picked up). Per request: cancellation
 * (notifications/cancelled aborts it upstream), progress relayed to the agent, the upstream's
 * response audited under the hash of the sealed envelope that carries it (PROTOCOL.md section
 * 8), a trace and the call metrics. Sessions' handshake state, prekeys and ratchet states live
 * in the session store, so a restarted gateway resumes them on the same port. While `accepting`
 * says no (the TGA has escalated), new sessions are refused (`not_ready`): offers answer 503 and
 * first messages are refused; sessions already open go on (and may resume).
 *
 * Tracing: one request is one trace. The root span starts when its frame is decrypted
 * (`talos.decrypt` is its first child), becomes `talos.tool_call` for tools/call, and holds
 * `talos.authorize`, `talos.audit.append` and `talos.upstream.call` as children.
 */
export class GatewayNotReady extends TalosError {}

/** Decrypted requests waiting for the handler to take their root span; more are ended early. */
export const MAX_PENDING_SPANS = 1024;

/** The session store the gateway needs: handshakes, prekeys, and ratchet states for resume. */
export type GatewaySessionStore = ResponderStore &
  TunnelSessionStore & {
    /** The highest prekey ids already stored (a restarted gateway continues after them). */
    lastPrekeyIds(): { spk: number; opk: number };
    /** Drops sessions not written for this long; returns how many. */
    pruneSessions(olderThanMs: number): number;
  };

/**
 * A session not used for this long is no longer resumable (its row is pruned at start and
 * then every SESSION_PRUNE_EVERY_MS): abandoned sessions do not pile up in the store.
 */
export const SESSION_RESUME_TTL_MS = 24 * 60 * 60 * 1000;
export const SESSION_PRUNE_EVERY_MS = 60 * 60 * 1000;

export interface GatewayDeps {
  config: () => TalosConfig;
  crypto: CryptoProvider;
  identity: Identity;
  authorizer: Authorizer;
  audit: AuditSink;
  rate: RateLimiter;
  budget: BudgetLedger;
  router: ToolRouter;
  sessions: GatewaySessionStore;
  /** Where the responder's handshake key agreement runs (default: inline). */
  keyAgreement?: KeyAgreement;
  /** False while the TGA has escalated (or is stopping): no new sessions. Default: always accepting. */
  accepting?: () => boolean;
  metrics?: TalosMetrics;
  /** Runs after the tunnel server closed, before the gateway machine is done (services the caller owns). */
  afterStop?: () => Promise<void>;
  log: (line: string) => void;
  now: () => number;
  inspect?: (event: InspectionEvent) => void;
}

export interface RunningGateway extends RunningService {
  url: string;
  /** The handshake side: its prekey rotation and replenishment are the TGA's scheduled jobs. */
  responder: GatewayResponder;
  port: number;
  pipeline: GatewayPipeline;
  server: TunnelServer;
  /** The gateway machine (sessions, refusals, drift); done once the gateway has stopped. */
  actor: Actor<typeof gatewayMachine>;
  /** Reports an upstream's tool drift to the gateway machine. */
  drift(event: Extract<GatewayEvent, { type: 'gateway.drift' }>): void;
}

/** Root spans of decrypted messages, by plaintext, until the handler takes them. */
class PendingSpans {
  readonly #byText = new Map<string, Span[]>();
  #count = 0;

  /** Starts a request's root span and runs `decrypt` as its first child (no span while tracing is off). */
  decrypt<T>(decrypt: () => T, async = false): { root: Span | undefined; result: T | Promise<Awaited<T>> } {
    if (!tracingEnabled()) return { root: undefined, result: decrypt() };
    const root = trace.getTracer('talos').startSpan('talos.request', { root: true });
    try {
      const ctx = trace.setSpan(otelContext.active(), root);
      const result = otelContext.with(ctx, () =>
        async ? withSpan(SPANS.decrypt, {}, async () => (await decrypt()) as Awaited<T>) : withSpanSync(SPANS.decrypt, {}, decrypt),
      );
      return { root, result: result as T | Promise<Awaited<T>> };
    } catch (err) {
      root.end();
      throw err;
    }
  }

  put(text: string, root: Span | undefined): void {
    if (!root) return;
    if (this.#count >= MAX_PENDING_SPANS) {
      const [oldest] = this.#byText.keys();
      this.take(oldest!)?.end();
    }
    const list = this.#byText.get(text) ?? [];
    list.push(root);
    this.#byText.set(text, list);
    this.#count++;
  }

  take(text: string): Span | undefined {
    if (this.#count === 0) return undefined; // no lookup keyed by the whole text
    const list = this.#byText.get(text);
    if (!list) return undefined;
    const span = list.shift();
    if (list.length === 0) this.#byText.delete(text);
    this.#count--;
    return span;
  }
}

/** A channel whose decryptions start the request's trace. */
class TracedChannel extends SessionChannel {
  constructor(
    crypto: CryptoProvider,
    session: Session,
    private readonly spans: PendingSpans,
  ) {
    super(crypto, session);
  }
  override open(envelope: Envelope, now: number): { text?: string; closeReason?: string } {
    const { root, result } = this.spans.decrypt(() => super.open(envelope, now));
    const opened = result as { text?: string; closeReason?: string };
    if (opened.text !== undefined) this.spans.put(opened.text, root);
    else root?.end();
    return opened;
  }
}

/** The responder refusing new sessions while the runtime is not accepting them, and tracing first messages. */
class GatedResponder extends GatewayResponder {
  constructor(
    crypto: CryptoProvider,
    identity: Identity,
    store: ResponderStore,
    private readonly gate: () => boolean,
    private readonly spans: PendingSpans,
    options: { now: () => number; lastIds?: { spk: number; opk: number }; keyAgreement?: KeyAgreement },
  ) {
    super(crypto, identity, store, options);
  }

  override async offer(): Promise<Offer> {
    if (!this.gate()) throw new GatewayNotReady('not_ready', 'the runtime is not ready (restart budget spent): no new sessions');
    return super.offer();
  }

  override async accept(envelope: Envelope): Promise<{ channel: SessionChannel; text: string }> {
    if (!this.gate()) throw new GatewayNotReady('not_ready', 'the runtime is not ready (restart budget spent): no new sessions');
    // The first message is decrypted inside the handshake: its trace starts there.
    const { root, result } = this.spans.decrypt(() => super.accept(envelope), true);
    let accepted: { channel: SessionChannel; text: string };
    try {
      accepted = await result;
    } catch (err) {
      root?.end();
      throw err;
    }
    this.spans.put(accepted.text, root);
    return { channel: new TracedChannel(this.crypto, accepted.channel.session, this.spans), text: accepted.text };
  }
}


/** Which way a finished tools/call went, for talos_calls_total{decision}. */
export function callDecision(response: RpcResponse): 'allow' | 'deny' | 'error' {
  if ('result' in response) return 'allow';
  const reason = (response.error.data as { talos?: { reason?: string } } | undefined)?.talos?.reason;
  if (reason === undefined || reason.endsWith('_unavailable')) return 'error';
  return 'deny';
}

/** The supervised gateway's router: the upstreams that currently run, each call traced as a span. */
export function supervisedRouter(upstreams: () => UpstreamActor[]): ToolRouter {
  return new UpstreamRouter(upstreams, (u, tool, call) => withSpan(SPANS.upstreamCall, { 'talos.upstream': u.name, 'talos.tool': tool }, call));
}

/** The capability check as a span. */
export function tracedAuthorizer(current: () => Authorizer): Authorizer {
  return {
    check: (token, request, did, now) =>
      withSpanSync(SPANS.authorize, { 'talos.tool': request.tool ?? '' }, (span) => {
        const r = current().check(token, request, did, now);
        span.setAttribute('talos.decision', r.ok ? 'allow' : r.code);
        return r;
      }),
    warm: (token) => current().warm?.(token),
  };
}

/** The audit append as a span. */
export function tracedAudit(sink: AuditSink): AuditSink {
  return { append: (event: AuditEvent) => withSpan(SPANS.auditAppend, { 'talos.audit.kind': event.kind }, () => sink.append(event)) };
}

export async function startGatewayService(deps: GatewayDeps, fail: (error: unknown) => void, port: number): Promise<RunningGateway> {
  const { crypto, identity, log, now, metrics } = deps;
  const config = deps.config();
  const spans = new PendingSpans();
  const pipeline = new GatewayPipeline({
    authorizer: tracedAuthorizer(() => deps.authorizer),
    audit: tracedAudit(deps.audit),
    rate: deps.rate,
    budget: deps.budget,
    // Read at every call: a reconciled limits section applies to the next request.
    get limits() {
      return deps.config().limits;
    },
    router: deps.router,
    gatewayDid: identity.did,
    serverInfo: { name: config.gateway.name, version: '0.1.0' },
    now,
  });
  const pruned = deps.sessions.pruneSessions(SESSION_RESUME_TTL_MS);
  if (pruned > 0) log(`sessions: ${pruned} unused for ${SESSION_RESUME_TTL_MS / 3_600_000} h pruned (no longer resumable)`);
  const responder = new GatedResponder(crypto, identity, deps.sessions, deps.accepting ?? (() => true), spans, {
    now,
    lastIds: deps.sessions.lastPrekeyIds(),
    ...(deps.keyAgreement ? { keyAgreement: deps.keyAgreement } : {}),
  });
  const requests = new InflightRequests();
  let server: TunnelServer | undefined;
  let pruner: NodeJS.Timeout | undefined;

  /**
   * Upstream notifications not tied to a request reach the session while it has a connection:
   * attached on open and on resume only, never per message (a message handled after its
   * session closed or dropped would attach it again, for good).
   */
  const attach = (peer: TunnelPeer, push: (text: string) => void) =>
    void pipeline.attachSession({ sid: peer.sid, did: peer.did, notify: (n) => push(JSON.stringify(n)) });

  const handle = async (peer: TunnelPeer, text: string, msgHash: string, push: (text: string) => void): Promise<string | TunnelReply | undefined> => {
    const root = spans.take(text);
    let msg;
    try {
      msg = toRpcMessage(parseJson(text, { allowFloats: true }));
    } catch (err) {
      root?.end();
      return JSON.stringify(rpcError(null, JSONRPC_INVALID_REQUEST, `talos: invalid_request: ${(err as Error).message}`));
    }
    if (!isRequest(msg)) {
      root?.end();
      // The agent gave up on a request: abort it upstream (the SDK forwards the cancellation).
      if (isNotification(msg) && msg.method === 'notifications/cancelled') requests.cancel(peer.sid, msg.params?.requestId);
      return undefined; // other notifications and stray responses need no answer
    }
    const inContext = <T>(fn: () => Promise<T>): Promise<T> => (root ? otelContext.with(trace.setSpan(otelContext.active(), root), fn) : fn());
    const done = (response: RpcResponse) => {
      if (request.method === 'tools/call') {
        const decision = callDecision(response);
        metrics?.recordCall(decision, (performance.now() - started) / 1000);
        root?.setAttribute('talos.decision', decision);
      }
      root?.end();
    };
    const request = msg;
    const started = performance.now();
    labelRoot(root, request);
    const controller = requests.start(peer.sid, request.id);
    const signal = controller.signal;
    try {
      const out = await inContext(async () => {
        try {
          return await pipeline.handleSealed({ did: peer.did, sid: peer.sid, msgHash, signal, notify: (n) => push(JSON.stringify(n)) }, request);
        } catch (err) {
          return { response: internalError(request.id, err) };
        }
      });
      const text = JSON.stringify(out.response);
      if (signal.aborted) {
        // A cancelled request gets no reply (MCP); its outcome is still audited.
        await inContext(async () => out.audit?.(sha256b64u(text)));
        done(out.response);
        return undefined;
      }
      const audit = out.audit;
      if (!audit) {
        done(out.response);
        return text;
      }
      // The response is audited under the hash of the envelope that carries it, before it leaves.
      return {
        text,
        beforeSend: async (frameHash: string) => {
          const failed = await inContext(() => audit(frameHash)).catch((err: unknown) => internalError(request.id, err));
          done(failed ?? out.response);
          return failed ? JSON.stringify(failed) : undefined;
        },
      };
    } finally {
      requests.finish(peer.sid, request.id, controller);
    }
  };

  const machine = gatewayMachine.provide({
    actors: {
      startServices: fromPromise(async () => {
        server = await startTunnelServer({
          host: config.gateway.host,
          port,
          responder,
          sessions: deps.sessions,
          channel: (session) => new TracedChannel(crypto, session, spans),
          now,
          handlers: {
            onOpen: async (peer, msgHash, push) => {
              actor.send({ type: 'gateway.session_opened' });
              metrics?.sessions.inc();
              attach(peer, push);
              // Never throws into the tunnel server: with the audit store down the session opens,
              // and every request on it is refused (audit_unavailable) until the store is back.
              await deps.audit
                .append({ ts: now(), kind: 'session_open', from: peer.did, to: identity.did, msg_hash: msgHash })
                .catch((err: unknown) => log(`audit: session_open not recorded: ${(err as Error).message}`));
            },
            // A resumed session is the same session: no second session_open.
            onResume: (peer, push) => {
              actor.send({ type: 'gateway.session_opened' });
              metrics?.sessions.inc();
              attach(peer, push);
            },
            onClose: (peer, reason) => {
              actor.send({ type: 'gateway.session_closed' });
              metrics?.sessions.dec();
              pipeline.detachSession(peer.sid);
              if (reason !== 'closed') return; // detached: requests go on, replies follow the session
              requests.abortAll(peer.sid);
              void deps.audit.append({ ts: now(), kind: 'session_close', from: peer.did, to: identity.did, msg_hash: sha256b64u(peer.sid) }).catch(() => {});
            },
            onRefused: (code) => actor.send({ type: 'gateway.handshake_refused', code }),
            // A request refused over the in-flight limit is audited like every other refusal.
            onOverloaded: async (peer, request, msgHash) => {
              await deps.audit
                .append({ ts: now(), kind: 'request', from: peer.did, to: identity.did, msg_hash: msgHash, method: request.method, decision: 'deny', reason: 'overloaded' })
                .catch((err: unknown) => log(`audit: overloaded refusal not recorded: ${(err as Error).message}`));
            },
            onMessage: handle,
          },
        });
        // A listening server that breaks afterwards is a fault for the TGA to handle.
        server.server.on('error', (err) => fail(err));
        pruner = setInterval(() => {
          try {
            deps.sessions.pruneSessions(SESSION_RESUME_TTL_MS);
          } catch (err) {
            log(`sessions: prune failed: ${(err as Error).message}`);
          }
        }, SESSION_PRUNE_EVERY_MS).unref();
      }),
      stopServices: fromPromise(async () => {
        clearInterval(pruner);
        await server?.close();
        await deps.afterStop?.();
      }),
    },
  });
  const actor = createActor(machine, { systemId: 'gateway', ...(deps.inspect ? { inspect: deps.inspect } : {}) });
  actor.start();
  const s = await waitFor(actor, (s) => s.matches('serving') || s.matches('failed'));
  if (s.matches('failed')) {
    actor.stop();
    clearInterval(pruner);
    await server?.close().catch(() => {});
    throw new TalosError('gateway_start_failed', `the gateway did not start: ${s.context.error ?? 'unknown'}`);
  }
  log(`gateway ${identity.did} listening on ${server!.url}`);
  return {
    url: server!.url,
    port: server!.port,
    pipeline,
    responder,
    server: server!,
    actor,
    drift: (event) => actor.send(event),
    stop: async () => {
      actor.send({ type: 'gateway.stop' });
      await waitFor(actor, (s) => s.status === 'done', { timeout: 30_000 });
    },
  };
}

/** Names a request's root span after what it asks. */
function labelRoot(root: Span | undefined, request: RpcRequest): void {
  if (!root) return;
  root.setAttribute('rpc.method', request.method);
  if (request.method !== 'tools/call') return;
  root.updateName(SPANS.toolCall);
  const tool = request.params?.name;
  if (typeof tool === 'string') root.setAttribute('talos.tool', tool.slice(0, 128));
}

/**
 * Requests being processed, per session, so a cancellation (or the session's end) can abort them.
 * An agent that reuses an id while a request with it is still in flight (MCP forbids it) gets
 * both kept: its cancellation of that id reaches both, and one finishing leaves the other.
 */
class InflightRequests {
  readonly #bySession = new Map<string, Map<string | number, Set<AbortController>>>();

  start(sid: string, id: string | number): AbortController {
    let mine = this.#bySession.get(sid);
    if (!mine) this.#bySession.set(sid, (mine = new Map()));
    let same = mine.get(id);
    if (!same) mine.set(id, (same = new Set()));
    const controller = new AbortController();
    same.add(controller);
    return controller;
  }

  finish(sid: string, id: string | number, controller: AbortController): void {
    const mine = this.#bySession.get(sid);
    const same = mine?.get(id);
    same?.delete(controller);
    if (same?.size === 0) mine!.delete(id);
    if (mine?.size === 0) this.#bySession.delete(sid);
  }

  cancel(sid: string, id: unknown): void {
    if (typeof id !== 'string' && typeof id !== 'number') return;
    for (const c of this.#bySession.get(sid)?.get(id) ?? []) c.abort();
  }

  abortAll(sid: string): void {
    for (const same of this.#bySession.get(sid)?.values() ?? []) for (const c of same) c.abort();
    this.#bySession.delete(sid);
  }
}
