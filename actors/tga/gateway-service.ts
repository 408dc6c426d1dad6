import { context as otelContext, trace, type Span } from '@opentelemetry/api';
import { createActor, fromPromise, waitFor, type InspectionEvent } from 'xstate';
import { gatewayMachine } from '../../machines/gateway.machine.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';
import type { TalosConfig } from '../../runtime/config/config.ts';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { parseJson } from '../../runtime/encoding/json.ts';
import { TalosError } from '../../runtime/errors.ts';
import type { Identity } from '../../runtime/identity/index.ts';
import type { BudgetLedger, RateLimiter } from '../../runtime/limits/index.ts';
import { JSONRPC_INVALID_REQUEST } from '../../runtime/mcp/errors.ts';
import { isRequest, rpcError, toRpcMessage, type RpcResponse } from '../../runtime/mcp/jsonrpc.ts';
import { GatewayPipeline, internalError, sha256b64u, type AuditSink, type Authorizer, type RoutedTool, type ToolRouter } from '../../runtime/mcp/pipeline.ts';
import { SessionChannel } from '../../runtime/net/channel.ts';
import { GatewayResponder, type Offer, type ResponderStore } from '../../runtime/net/responder.ts';
import { startTunnelServer, type TunnelServer } from '../../runtime/net/server.ts';
import type { Envelope } from '../../runtime/session/index.ts';
import { SPANS, withSpan, withSpanSync, type TalosMetrics } from '../../runtime/telemetry/index.ts';
import type { UpstreamActor } from '../upstream/index.ts';
import { UpstreamRouter } from '../gateway/index.ts';
import type { RunningService } from './service-child.ts';

/**
 * The gateway as a supervised service: the tunnel server and the request pipeline over the
 * services the TGA owns (the auditor and the upstreams are its siblings, reached through
 * indirections so a restarted sibling is picked up). Sessions' handshake state and prekeys live
 * in the runtime's session store, so a restarted gateway resumes from it on the same port.
 * While the TGA has escalated, new sessions are refused (`not_ready`): offers answer 503 and
 * first messages are refused; sessions already open go on.
 *
 * Tracing: one request is one trace. The root span starts when its frame is decrypted
 * (`talos.decrypt` is its first child), becomes `talos.tool_call` for tools/call, and holds
 * `talos.authorize`, `talos.audit.append` and `talos.upstream.call` as children.
 */
export class GatewayNotReady extends TalosError {}

/** Decrypted requests waiting for the handler to take their root span; more are ended early. */
export const MAX_PENDING_SPANS = 1024;

export interface GatewayDeps {
  config: () => TalosConfig;
  crypto: CryptoProvider;
  identity: Identity;
  authorizer: Authorizer;
  audit: AuditSink;
  rate: RateLimiter;
  budget: BudgetLedger;
  router: ToolRouter;
  sessions: ResponderStore;
  /** The highest prekey ids already in the session store (a restarted gateway continues after them). */
  lastPrekeyIds?: () => { spk: number; opk: number };
  /** False while the TGA has escalated (or is stopping): no new sessions. */
  accepting: () => boolean;
  metrics?: TalosMetrics;
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
}

/** Root spans of decrypted messages, by plaintext, until the handler takes them. */
class PendingSpans {
  readonly #byText = new Map<string, Span[]>();
  #count = 0;

  /** Starts a request's root span and runs `decrypt` as its first child. */
  decrypt<T>(decrypt: () => T, async = false): { root: Span; result: T | Promise<Awaited<T>> } {
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

  put(text: string, root: Span): void {
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
    channel: SessionChannel,
    private readonly spans: PendingSpans,
  ) {
    super(crypto, channel.session);
  }
  override open(envelope: Envelope, now: number): { text?: string; closeReason?: string } {
    const { root, result } = this.spans.decrypt(() => super.open(envelope, now));
    const opened = result as { text?: string; closeReason?: string };
    if (opened.text !== undefined) this.spans.put(opened.text, root);
    else root.end();
    return opened;
  }
}

/** The responder refusing new sessions while the runtime is not accepting them, and tracing first messages. */
class GatedResponder extends GatewayResponder {
  constructor(
    private readonly cryptoProvider: CryptoProvider,
    identity: Identity,
    store: ResponderStore,
    private readonly gate: () => boolean,
    private readonly spans: PendingSpans,
    options: { now: () => number; lastIds?: { spk: number; opk: number } },
  ) {
    super(cryptoProvider, identity, store, options);
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
      root.end();
      throw err;
    }
    this.spans.put(accepted.text, root);
    return { channel: new TracedChannel(this.cryptoProvider, accepted.channel, this.spans), text: accepted.text };
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
  const lastIds = deps.lastPrekeyIds?.();
  const responder = new GatedResponder(crypto, identity, deps.sessions, deps.accepting, spans, { now, ...(lastIds ? { lastIds } : {}) });
  let server: TunnelServer | undefined;

  const handle = async (peer: { did: string }, text: string, msgHash: string): Promise<string | undefined> => {
    const root = spans.take(text);
    const started = performance.now();
    let msg;
    try {
      msg = toRpcMessage(parseJson(text, { allowFloats: true }));
    } catch (err) {
      root?.end();
      return JSON.stringify(rpcError(null, JSONRPC_INVALID_REQUEST, `talos: invalid_request: ${(err as Error).message}`));
    }
    if (!isRequest(msg)) {
      root?.end();
      return undefined;
    }
    const request = msg;
    const isCall = request.method === 'tools/call';
    if (root) {
      root.setAttribute('rpc.method', request.method);
      if (isCall) {
        root.updateName(SPANS.toolCall);
        const tool = request.params?.name;
        if (typeof tool === 'string') root.setAttribute('talos.tool', tool.slice(0, 128));
      }
    }
    const run = async () => {
      try {
        return await pipeline.handle({ did: peer.did, msgHash }, request);
      } catch (err) {
        return internalError(request.id, err);
      }
    };
    const response = root ? await otelContext.with(trace.setSpan(otelContext.active(), root), run) : await run();
    if (isCall) {
      const decision = callDecision(response);
      metrics?.recordCall(decision, (performance.now() - started) / 1000);
      root?.setAttribute('talos.decision', decision);
    }
    root?.end();
    return JSON.stringify(response);
  };

  const machine = gatewayMachine.provide({
    actors: {
      startServices: fromPromise(async () => {
        server = await startTunnelServer({
          host: config.gateway.host,
          port,
          responder,
          now,
          handlers: {
            onOpen: async (peer, msgHash) => {
              actor.send({ type: 'gateway.session_opened' });
              metrics?.sessions.inc();
              // Never throws into the tunnel server: with the audit store down the session opens,
              // and every request on it is refused (audit_unavailable) until the store is back.
              await deps.audit
                .append({ ts: now(), kind: 'session_open', from: peer.did, to: identity.did, msg_hash: msgHash })
                .catch((err: unknown) => log(`audit: session_open not recorded: ${(err as Error).message}`));
            },
            onClose: (peer) => {
              actor.send({ type: 'gateway.session_closed' });
              metrics?.sessions.dec();
              void deps.audit.append({ ts: now(), kind: 'session_close', from: peer.did, to: identity.did, msg_hash: sha256b64u(peer.sid) }).catch(() => {});
            },
            onRefused: (code) => actor.send({ type: 'gateway.handshake_refused', code }),
            onMessage: (peer, text, msgHash) => handle(peer, text, msgHash),
          },
        });
        // A listening server that breaks afterwards is a fault for the TGA to handle.
        server.server.on('error', (err) => fail(err));
      }),
      stopServices: fromPromise(async () => {
        await server?.close();
      }),
    },
  });
  const actor = createActor(machine, { ...(deps.inspect ? { inspect: deps.inspect } : {}) });
  actor.start();
  const s = await waitFor(actor, (s) => s.matches('serving') || s.matches('failed'));
  if (s.matches('failed')) {
    actor.stop();
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
    stop: async () => {
      actor.send({ type: 'gateway.stop' });
      await waitFor(actor, (s) => s.status === 'done');
    },
  };
}
