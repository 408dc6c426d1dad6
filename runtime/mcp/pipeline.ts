import { hash } from 'node:crypto';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { AccessRequest, CheckResult } from '../capability/index.ts';
import type { AuditEvent } from '../audit/event.ts';
import { toolLimits, type LimitsConfig } from '../config/config.ts';
import { LimitError, type BudgetLedger, type RateLimiter } from '../limits/types.ts';
import { JSONRPC_INTERNAL_ERROR, JSONRPC_INVALID_PARAMS, JSONRPC_METHOD_NOT_FOUND, RPC_ERRORS, TunnelError, circuitOpenRefusal } from './errors.ts';
import { TOOL_NAME, isPlainObject, rpcError, type RpcNotification, type RpcRequest, type RpcResponse } from './jsonrpc.ts';
import { capabilityFrom, stripTalosMeta } from './meta.ts';
import { MAX_SUBSCRIPTIONS_PER_SESSION, SessionHub, isLogLevel, mergedCapabilities, routePrompt, routeResource, type CircuitAdmission, type RelaySession, type RelayUpstream, type UpstreamCall } from './relay.ts';

/**
 * The gateway's per-request pipeline. For every JSON-RPC request that arrives through a session:
 *   classify (method, target, arguments) -> authorize (capability checker, sub = session DID)
 *   -> target known and not drifted -> admitted by its upstream's circuit breaker
 *   -> rate limit (agent, bucket) -> reserve budget (tools)
 *   -> append the decision to the audit log (BEFORE forwarding) -> strip every talos _meta key
 *   -> forward through the upstream's breaker -> settle the budget -> audit the response.
 * Relayed requests: tools/call, prompts/get, resources/read, resources/subscribe,
 * completion/complete (each mapped to a capability request: contracts/SPEC.md 9.4).
 * A refusal at any step is audited as a denial and answered as a JSON-RPC error whose
 * data.talos.reason names the refusal. The gateway is itself the MCP server the agent sees:
 * it answers initialize (the upstreams' capabilities, merged), ping, logging/setLevel and
 * resources/unsubscribe, and merges the upstreams' listings, filtered to what the capability
 * grants. Notifications not tied to a request reach the sessions attached with
 * `attachSession` (runtime/mcp/relay.ts decides who gets which).
 *
 * Every effect sits behind a port, so the real services plug in unchanged: the Authorizer is
 * runtime/capability's CapabilityChecker, the AuditSink the auditor actor.
 */

export interface Authorizer {
  check(token: string, request: AccessRequest, sessionDid: string, nowMs: number): CheckResult;
  /**
   * Optional: makes the next `check` of this token a cache hit by verifying its chain off the
   * request thread (the worker pool). Returns undefined when there is nothing to wait for.
   */
  warm?(token: string): Promise<void> | undefined;
}

export interface AuditSink {
  /** Durable once the promise resolves. */
  append(event: AuditEvent): Promise<unknown>;
}

export interface RoutedTool {
  name: string;
  upstream: string;
  upstreamName: string;
  definition: Record<string, unknown>;
}

export interface ToolRouter {
  tools(): RoutedTool[];
  /** A tool by the name agents see: found, withheld because its definition drifted, or unknown. */
  resolve(name: string): { tool: RoutedTool; call: UpstreamCall; admit?: AdmitToCircuit } | 'drift' | undefined;
  /**
   * The upstreams in configured order, for everything besides tools (prompts, resources,
   * completion, logging, notifications). Without it the gateway relays tools only.
   */
  upstreams?(): RelayUpstream[];
}

export interface PipelinePorts {
  authorizer: Authorizer;
  audit: AuditSink;
  rate: RateLimiter;
  budget: BudgetLedger;
  limits: LimitsConfig;
  router: ToolRouter;
  /** This gateway's DID (the `to` of request events, `from` of responses). */
  gatewayDid: string;
  serverInfo?: { name: string; version: string };
  now?: () => number;
}

/** Who sent the request: the DID the session authenticated, and the hash of its envelope. */
export interface RequestContext {
  did: string;
  /** base64url SHA-256 of the canonical envelope that carried the request. */
  msgHash: string;
  /** Aborted when the agent cancels the request (notifications/cancelled). */
  signal?: AbortSignal;
  /** Sends a notification to the agent on its session (progress of its requests). */
  notify?: (notification: RpcNotification) => void;
  /** The session (as attached with `attachSession`): needed by resources/subscribe and logging/setLevel. */
  sid?: string;
}

/** Progress notifications relayed to an agent per request at most (a chatty upstream is cut off). */
export const MAX_PROGRESS_PER_REQUEST = 10_000;

/** The rate bucket of a listing method: it holds a space, which no tool name can, so no tool shares it. */
export const listingBucket = (method: string): string => `${method} (listing)`;
/** The rate bucket of the other relayed methods, one per (agent, method). */
export const methodBucket = (method: string): string => `${method} (method)`;

/** Longest resource URI accepted (a longer one is refused before anything else). */
export const MAX_URI_LENGTH = 4096;

type Sealed = { response: RpcResponse; audit?: (msgHash: string) => Promise<RpcResponse | undefined> };

export type AdmitToCircuit = () => CircuitAdmission;

/** An authorized request on its way to one upstream. */
interface Forward {
  /** The audit event's `tool` (tools and prompts). */
  tool?: string;
  tokenId: string | undefined;
  upstream: string;
  call: UpstreamCall;
  params: Record<string, unknown> | undefined;
  bucket: string;
  rate: LimitsConfig['rate'];
  cost: number;
  /** Runs on a successful answer, before it is returned (subscription bookkeeping). */
  onResult?: () => void;
  admit?: AdmitToCircuit;
}

/** One-shot: no native Hash object per call (the tunnel hashes every frame, both ways). */
export function sha256b64u(data: string | Uint8Array): string {
  return hash('sha256', data, 'base64url');
}

interface Refusal {
  reason: string;
  message: string;
  rpcCode: number;
  data?: Record<string, unknown>;
}

const refuse = (reason: string, message: string, rpcCode: number = RPC_ERRORS.unauthorized, data?: Record<string, unknown>): Refusal => ({
  reason,
  message,
  rpcCode,
  ...(data ? { data } : {}),
});

export class GatewayPipeline {
  private readonly now: () => number;
  readonly stats = { allowed: 0, denied: 0, forwarded: 0 };

  private readonly hub: SessionHub;
  private readonly listening = new WeakSet<RelayUpstream>();

  constructor(private readonly ports: PipelinePorts) {
    this.now = ports.now ?? Date.now;
    this.hub = new SessionHub(async (token, did, request) => (await this.check(token, request, did)).ok);
  }

  /**
   * Attaches a session so that upstream notifications not tied to a request (list changes,
   * resource updates, log messages) can reach it. Attaching a session already attached (same
   * sid) changes nothing. Returns its detach function (`detachSession(sid)`).
   */
  attachSession(session: RelaySession): () => void {
    this.relayUpstreams();
    if (!this.hub.has(session.sid)) this.hub.attach(session);
    return () => this.detachSession(session.sid);
  }

  /** Ends the session's subscriptions (unsubscribing upstream when no other session holds the URI). */
  detachSession(sid: string): void {
    for (const { upstream, uri } of this.hub.orphans(sid)) this.unsubscribeUpstream(upstream, uri);
    this.hub.detach(sid);
  }

  /** The upstreams, each one listened to (once) for the notifications agents may get. */
  private relayUpstreams(): RelayUpstream[] {
    const ups = this.ports.router.upstreams?.() ?? [];
    for (const u of ups) {
      if (this.listening.has(u)) continue;
      this.listening.add(u);
      u.onNotification((n) => void this.hub.deliver(u.name, n).catch(() => {}));
    }
    return ups;
  }

  private unsubscribeUpstream(upstream: string, uri: string): void {
    const u = this.relayUpstreams().find((x) => x.name === upstream);
    void u?.call('resources/unsubscribe', { uri }).catch(() => {});
  }

  /**
   * Handles one request and audits its response with msg_hash = SHA-256 of the response text.
   * The gateway itself uses `handleSealed`, which hashes the sealed envelope instead.
   */
  async handle(ctx: RequestContext, req: RpcRequest): Promise<RpcResponse> {
    const out = await this.handleSealed(ctx, req);
    if (!out.audit) return out.response;
    return (await out.audit(sha256b64u(JSON.stringify(out.response)))) ?? out.response;
  }

  /**
   * Handles one request. When the answer came from an upstream, `audit` must be called with
   * the hash of the envelope that will carry the response (PROTOCOL.md section 8) BEFORE it is
   * sent: it appends the response event and returns a replacement answer if that failed.
   */
  async handleSealed(ctx: RequestContext, req: RpcRequest): Promise<Sealed> {
    switch (req.method) {
      case 'tools/call':
        return this.callTool(ctx, req);
      case 'prompts/get':
        return this.getPrompt(ctx, req);
      case 'resources/read':
      case 'resources/subscribe':
        return this.readResource(ctx, req);
      case 'completion/complete':
        return this.complete(ctx, req);
      default:
        return { response: await this.handleLocal(ctx, req) };
    }
  }

  private async handleLocal(ctx: RequestContext, req: RpcRequest): Promise<RpcResponse> {
    switch (req.method) {
      case 'initialize':
        return this.local(ctx, req, this.initializeResult(req));
      case 'ping':
        return this.local(ctx, req, {});
      case 'tools/list':
        // arg_violation with empty arguments: the grant names the tool but constrains its arguments.
        return this.listing(ctx, req, 'tools', { method: 'tools/call', args: {} }, async () => this.ports.router.tools().map((t) => ({ ...t.definition, name: t.name })), (t) => ({ method: 'tools/call', tool: String(t.name), args: {} }), true);
      case 'prompts/list':
        return this.listing(ctx, req, 'prompts', { method: 'prompts/get', args: {} }, async () => this.routablePrompts(), (p) => ({ method: 'prompts/get', tool: String(p.name), args: {} }), true);
      case 'resources/list':
        return this.listing(ctx, req, 'resources', { method: 'resources/read', args: {} }, async () => (await this.relisted('resources')).filter((r) => typeof r.uri === 'string'), (r) => ({ method: 'resources/read', args: { uri: r.uri as string } }), false);
      case 'resources/templates/list':
        return this.listing(ctx, req, 'resourceTemplates', { method: 'resources/read', args: {} }, () => this.relisted('templates'), () => ({ method: 'resources/read', args: {} }), true);
      case 'resources/unsubscribe':
        return this.unsubscribe(ctx, req);
      case 'logging/setLevel':
        return this.setLevel(ctx, req);
      default:
        return this.deny(ctx, req, undefined, undefined, refuse('method_not_supported', `the gateway does not relay ${req.method}`, JSONRPC_METHOD_NOT_FOUND));
    }
  }

  private initializeResult(req: RpcRequest): Record<string, unknown> {
    const asked = req.params?.protocolVersion;
    const protocolVersion = typeof asked === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(asked) ? asked : LATEST_PROTOCOL_VERSION;
    return {
      protocolVersion,
      capabilities: mergedCapabilities(this.relayUpstreams()),
      serverInfo: this.ports.serverInfo ?? { name: 'talos-gateway', version: '0.1.0' },
    };
  }

  private event(ctx: RequestContext, req: RpcRequest, tool: string | undefined, decision: 'allow' | 'deny', reason: string, tokenId?: string): AuditEvent {
    const e: AuditEvent = { ts: this.now(), kind: 'request', from: ctx.did, to: this.ports.gatewayDid, msg_hash: ctx.msgHash, method: req.method, decision, reason };
    if (tool !== undefined) e.tool = tool;
    if (tokenId !== undefined) e.token_id = tokenId;
    return e;
  }

  /** Answered by the gateway itself (initialize, ping): audited, no capability needed. */
  private async local(ctx: RequestContext, req: RpcRequest, result: Record<string, unknown>): Promise<RpcResponse> {
    try {
      await this.ports.audit.append(this.event(ctx, req, undefined, 'allow', 'local'));
    } catch (err) {
      return this.auditFailed(req, err);
    }
    return { jsonrpc: '2.0', id: req.id, result };
  }

  private async deny(ctx: RequestContext, req: RpcRequest, tool: string | undefined, tokenId: string | undefined, r: Refusal): Promise<RpcResponse> {
    this.stats.denied++;
    try {
      await this.ports.audit.append(this.event(ctx, req, tool, 'deny', r.reason, tokenId));
    } catch (err) {
      return this.auditFailed(req, err);
    }
    return rpcError(req.id, r.rpcCode, `talos: ${r.reason}: ${r.message}`, { talos: { reason: r.reason, ...(r.data ?? {}) } });
  }

  private auditFailed(req: RpcRequest, err: unknown): RpcResponse {
    const why = err instanceof Error ? err.message : String(err);
    return rpcError(req.id, RPC_ERRORS.audit_unavailable, `talos: audit_unavailable: the decision could not be recorded (${why})`, {
      talos: { reason: 'audit_unavailable' },
    });
  }

  /** The checker's verdict; a token it has not verified yet may be verified off this thread first (warm). */
  private async check(token: string, request: AccessRequest, did: string, nowMs?: number): Promise<CheckResult> {
    const warming = this.ports.authorizer.warm?.(token);
    if (warming) await warming;
    return this.ports.authorizer.check(token, request, did, nowMs ?? this.now());
  }

  private async authorize(ctx: RequestContext, token: string | undefined, request: AccessRequest): Promise<CheckResult | Refusal> {
    if (token === undefined) return refuse('capability_missing', 'the request carries no capability token');
    return this.check(token, request, ctx.did);
  }

  /**
   * Authorizes `request`, or answers the audited denial. With `visible`, a grant that names the
   * target but constrains arguments (arg_violation) is enough: the listing rule, used where the
   * request carries no arguments to check (completion).
   */
  private async grant(ctx: RequestContext, req: RpcRequest, tool: string | undefined, request: AccessRequest, visible = false): Promise<{ tokenId: string | undefined; token: string } | RpcResponse> {
    const token = capabilityFrom(req.params);
    const auth = await this.authorize(ctx, token, request);
    if ('reason' in auth) return this.deny(ctx, req, tool, undefined, auth);
    if (auth.ok) return { tokenId: auth.tokenId, token: token! };
    if (visible && auth.code === 'arg_violation') return { tokenId: undefined, token: token! };
    const data = auth.arg !== undefined ? { arg: auth.arg } : undefined;
    return this.deny(ctx, req, tool, undefined, refuse(auth.code, auth.message, RPC_ERRORS.unauthorized, data));
  }

  /**
   * The prompts as routing sees them: a name goes to the first upstream that offers it, and a
   * name withheld there for drift is not listed from a later one either.
   */
  private routablePrompts(): Record<string, unknown>[] {
    const ups = this.relayUpstreams();
    return ups.flatMap((u) => u.prompts().filter((p) => {
      const route = typeof p.name === 'string' ? routePrompt(ups, p.name) : undefined;
      return typeof route === 'object' && route.upstream === u;
    }));
  }

  /** Every upstream's listing read again (one that fails keeps its last listing). */
  private async relisted(listing: 'resources' | 'templates'): Promise<Record<string, unknown>[]> {
    const ups = this.relayUpstreams();
    await Promise.allSettled(ups.map((u) => u.relist(listing)));
    return ups.flatMap((u) => u.listed(listing));
  }

  /**
   * A merged listing filtered to what the token allows, in the order of every other request:
   * the token itself is vetted first (chain, trust, subject, audience, time, revocation), then
   * the rate limit, then the decision is audited, and only then are the items read (for
   * resources, from every upstream). The checker runs the request-independent checks before
   * any grant is matched, so checking `probe` (the broadest request of the listing's kind)
   * refuses a bad token whatever it asks; no_matching_grant or arg_violation there only means
   * that the token is valid. Then an item is visible when the checker allows `accessOf(item)`
   * (or, with `argsMayFail`, refuses it only for its arguments); `no_matching_grant` hides it;
   * any other refusal (a revocation that arrived meanwhile) refuses the whole request.
   */
  private async listing(
    ctx: RequestContext,
    req: RpcRequest,
    key: string,
    probe: AccessRequest,
    items: () => Promise<Record<string, unknown>[]>,
    accessOf: (item: Record<string, unknown>) => AccessRequest,
    argsMayFail: boolean,
  ): Promise<RpcResponse> {
    const token = capabilityFrom(req.params);
    if (token === undefined) return this.deny(ctx, req, undefined, undefined, refuse('capability_missing', 'the request carries no capability token'));
    // Decided at one instant: a token that expires while the upstreams answer does not turn an
    // audited allow into a refusal halfway through the listing.
    const nowMs = this.now();
    const vetted = await this.check(token, probe, ctx.did, nowMs);
    if (!vetted.ok && vetted.code !== 'no_matching_grant' && vetted.code !== 'arg_violation') {
      return this.deny(ctx, req, undefined, undefined, refuse(vetted.code, vetted.message));
    }
    const tokenId = vetted.ok ? vetted.tokenId : undefined;
    const limited = await this.rateLimit(ctx, req, listingBucket(req.method), 1, this.ports.limits.rate, tokenId);
    if (limited) return limited;
    try {
      await this.ports.audit.append(this.event(ctx, req, undefined, 'allow', 'granted', tokenId));
    } catch (err) {
      return this.auditFailed(req, err);
    }
    this.stats.allowed++;
    const visible: Record<string, unknown>[] = [];
    for (const item of await items()) {
      const r = await this.check(token, accessOf(item), ctx.did, nowMs);
      if (r.ok || (argsMayFail && r.code === 'arg_violation')) visible.push(item);
      else if (r.code !== 'no_matching_grant' && r.code !== 'arg_violation') return this.deny(ctx, req, undefined, tokenId, refuse(r.code, r.message));
    }
    return { jsonrpc: '2.0', id: req.id, result: { [key]: visible } };
  }

  private async rateLimit(ctx: RequestContext, req: RpcRequest, bucket: string, cost: number, rule: LimitsConfig['rate'], tokenId?: string, tool?: string): Promise<RpcResponse | undefined> {
    let d;
    try {
      d = await this.ports.rate.take(ctx.did, bucket, rule, Math.min(cost, rule.capacity));
    } catch (err) {
      return this.deny(ctx, req, tool, tokenId, refuse('limits_unavailable', `the rate limiter failed: ${(err as Error).message}`, RPC_ERRORS.limits_unavailable));
    }
    if (d.allowed) return undefined;
    return this.deny(ctx, req, tool, tokenId, refuse('rate_limited', `too many calls; retry after ${d.retryAfterMs} ms`, RPC_ERRORS.rate_limited, { retryAfterMs: d.retryAfterMs }));
  }

  /** params.name and params.arguments of tools/call and prompts/get, or the refusal of a malformed one. */
  private async nameAndArguments(ctx: RequestContext, req: RpcRequest, what: 'tool' | 'prompt'): Promise<{ name: string; args: Record<string, unknown> } | Sealed> {
    const params = req.params ?? {};
    const name = params.name;
    if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
      return this.wrap(this.deny(ctx, req, undefined, undefined, refuse(`invalid_${what}_name`, `params.name must be a ${what} name`, JSONRPC_INVALID_PARAMS)));
    }
    const args = params.arguments === undefined ? {} : params.arguments;
    if (!isPlainObject(args)) return this.wrap(this.deny(ctx, req, name, undefined, refuse('invalid_arguments', 'params.arguments must be an object', JSONRPC_INVALID_PARAMS)));
    return { name, args };
  }

  private async callTool(ctx: RequestContext, req: RpcRequest): Promise<Sealed> {
    const named = await this.nameAndArguments(ctx, req, 'tool');
    if ('response' in named) return named;
    const { name, args } = named;
    const params = req.params!;
    const granted = await this.grant(ctx, req, name, { method: 'tools/call', tool: name, args });
    if (!('token' in granted)) return { response: granted };
    const { tokenId } = granted;

    const route = this.ports.router.resolve(name);
    if (route === 'drift') {
      return this.wrap(this.deny(ctx, req, name, tokenId, refuse('tool_drift', `the definition of ${name} changed since it was pinned; an operator must re-pin it`, RPC_ERRORS.tool_drift)));
    }
    if (route === undefined) return this.wrap(this.deny(ctx, req, name, tokenId, refuse('unknown_tool', `no upstream offers ${name}`, JSONRPC_INVALID_PARAMS)));

    const { cost, rate } = toolLimits(this.ports.limits, name);
    // The capability (and every other talos key) stops here.
    const upstreamParams = { ...stripTalosMeta(params), name: route.tool.upstreamName };
    const f: Forward = { tool: name, tokenId, upstream: route.tool.upstream, call: route.call, params: upstreamParams, bucket: name, rate, cost };
    if (route.admit) f.admit = route.admit;
    return this.forward(ctx, req, f);
  }

  /** prompts/get, authorized as { method: 'prompts/get', tool: <prompt>, args: <its arguments> }. */
  private async getPrompt(ctx: RequestContext, req: RpcRequest): Promise<Sealed> {
    const named = await this.nameAndArguments(ctx, req, 'prompt');
    if ('response' in named) return named;
    const { name, args } = named;
    const granted = await this.grant(ctx, req, name, { method: 'prompts/get', tool: name, args });
    if (!('token' in granted)) return { response: granted };
    const route = routePrompt(this.relayUpstreams(), name);
    if (route === 'drift') {
      return this.wrap(this.deny(ctx, req, name, granted.tokenId, refuse('prompt_drift', `the definition of prompt ${name} changed since it was pinned; an operator must re-pin it`, RPC_ERRORS.tool_drift)));
    }
    if (route === undefined) return this.wrap(this.deny(ctx, req, name, granted.tokenId, refuse('unknown_prompt', `no upstream offers the prompt ${name}`, JSONRPC_INVALID_PARAMS)));
    return this.forward(ctx, req, this.relayed(req, granted.tokenId, route.upstream, name));
  }

  /**
   * resources/read and resources/subscribe, both authorized as
   * { method: 'resources/read', args: { uri } } (one may subscribe to what one may read).
   */
  private async readResource(ctx: RequestContext, req: RpcRequest): Promise<Sealed> {
    const uri = req.params?.uri;
    if (typeof uri !== 'string' || uri.length === 0 || uri.length > MAX_URI_LENGTH) {
      return this.wrap(this.deny(ctx, req, undefined, undefined, refuse('invalid_uri', `params.uri must be a URI of 1..${MAX_URI_LENGTH} characters`, JSONRPC_INVALID_PARAMS)));
    }
    const granted = await this.grant(ctx, req, undefined, { method: 'resources/read', args: { uri } });
    if (!('token' in granted)) return { response: granted };
    const { tokenId, token } = granted;
    const subscribing = req.method === 'resources/subscribe';
    if (subscribing && !this.hub.has(ctx.sid)) {
      return this.wrap(this.deny(ctx, req, undefined, tokenId, refuse('notifications_unavailable', 'this session cannot receive notifications', JSONRPC_METHOD_NOT_FOUND)));
    }
    const upstream = routeResource(this.relayUpstreams(), uri);
    if (!upstream) return this.wrap(this.deny(ctx, req, undefined, tokenId, refuse('unknown_resource', 'no upstream listed this uri or offers a template that matches it', JSONRPC_INVALID_PARAMS)));
    const f = this.relayed(req, tokenId, upstream);
    if (subscribing) {
      const sid = ctx.sid!;
      if (!this.hub.canSubscribe(sid, uri)) {
        return this.wrap(this.deny(ctx, req, undefined, tokenId, refuse('too_many_subscriptions', `a session holds at most ${MAX_SUBSCRIPTIONS_PER_SESSION} subscriptions`, JSONRPC_INVALID_PARAMS)));
      }
      f.onResult = () => this.hub.subscribe(sid, upstream.name, uri, token);
    }
    return this.forward(ctx, req, f);
  }

  /**
   * completion/complete: allowed when the token would list the reference (a prompt it grants,
   * or resource templates when it grants resources/read at all); routed like the reference.
   */
  private async complete(ctx: RequestContext, req: RpcRequest): Promise<Sealed> {
    const ref = req.params?.ref;
    const invalid = () => this.wrap(this.deny(ctx, req, undefined, undefined, refuse('invalid_reference', 'params.ref must be a ref/prompt with a name or a ref/resource with a uri', JSONRPC_INVALID_PARAMS)));
    if (!isPlainObject(ref)) return invalid();
    if (ref.type === 'ref/prompt' && typeof ref.name === 'string' && TOOL_NAME.test(ref.name)) {
      const name = ref.name;
      const granted = await this.grant(ctx, req, name, { method: 'prompts/get', tool: name, args: {} }, true);
      if (!('token' in granted)) return { response: granted };
      const route = routePrompt(this.relayUpstreams(), name);
      if (route === 'drift') return this.wrap(this.deny(ctx, req, name, granted.tokenId, refuse('prompt_drift', `the definition of prompt ${name} changed since it was pinned`, RPC_ERRORS.tool_drift)));
      if (route === undefined) return this.wrap(this.deny(ctx, req, name, granted.tokenId, refuse('unknown_prompt', `no upstream offers the prompt ${name}`, JSONRPC_INVALID_PARAMS)));
      return this.forward(ctx, req, this.relayed(req, granted.tokenId, route.upstream, name));
    }
    if (ref.type === 'ref/resource' && typeof ref.uri === 'string' && ref.uri.length > 0 && ref.uri.length <= MAX_URI_LENGTH) {
      const granted = await this.grant(ctx, req, undefined, { method: 'resources/read', args: {} }, true);
      if (!('token' in granted)) return { response: granted };
      const upstream = routeResource(this.relayUpstreams(), ref.uri);
      if (!upstream) return this.wrap(this.deny(ctx, req, undefined, granted.tokenId, refuse('unknown_resource', 'no upstream offers a resource or template for this uri', JSONRPC_INVALID_PARAMS)));
      return this.forward(ctx, req, this.relayed(req, granted.tokenId, upstream));
    }
    return invalid();
  }

  /** The forward of a relayed (non-tool) request: its own method bucket, no budget cost. */
  private relayed(req: RpcRequest, tokenId: string | undefined, upstream: RelayUpstream, tool?: string): Forward {
    return {
      ...(tool !== undefined ? { tool } : {}),
      tokenId,
      upstream: upstream.name,
      call: (method, params, signal, onProgress) => upstream.call(method, params, signal, onProgress),
      ...(upstream.admit ? { admit: () => upstream.admit!() } : {}),
      params: stripTalosMeta(req.params),
      bucket: methodBucket(req.method),
      rate: this.ports.limits.rate,
      cost: 0,
    };
  }

  /** resources/unsubscribe ends the session's own subscription: no capability needed. */
  private async unsubscribe(ctx: RequestContext, req: RpcRequest): Promise<RpcResponse> {
    const uri = req.params?.uri;
    if (typeof uri !== 'string' || uri.length === 0 || uri.length > MAX_URI_LENGTH) {
      return this.deny(ctx, req, undefined, undefined, refuse('invalid_uri', `params.uri must be a URI of 1..${MAX_URI_LENGTH} characters`, JSONRPC_INVALID_PARAMS));
    }
    const orphan = ctx.sid === undefined ? undefined : this.hub.unsubscribe(ctx.sid, uri);
    const answer = await this.local(ctx, req, {});
    if (orphan !== undefined) this.unsubscribeUpstream(orphan, uri);
    return answer;
  }

  /**
   * logging/setLevel, authorized as { method: 'logging/setLevel', args: { level } }. The level
   * is the session's own: each upstream is set to the most verbose level any session asked for,
   * and every session gets the messages at or above its level (SessionHub).
   */
  private async setLevel(ctx: RequestContext, req: RpcRequest): Promise<RpcResponse> {
    const level = req.params?.level;
    if (!isLogLevel(level)) return this.deny(ctx, req, undefined, undefined, refuse('invalid_level', 'params.level must be an MCP logging level', JSONRPC_INVALID_PARAMS));
    const granted = await this.grant(ctx, req, undefined, { method: 'logging/setLevel', args: { level } });
    if (!('token' in granted)) return granted;
    if (!this.hub.has(ctx.sid)) return this.deny(ctx, req, undefined, granted.tokenId, refuse('notifications_unavailable', 'this session cannot receive notifications', JSONRPC_METHOD_NOT_FOUND));
    const limited = await this.rateLimit(ctx, req, methodBucket(req.method), 1, this.ports.limits.rate, granted.tokenId);
    if (limited) return limited;
    try {
      await this.ports.audit.append(this.event(ctx, req, undefined, 'allow', 'granted', granted.tokenId));
    } catch (err) {
      return this.auditFailed(req, err);
    }
    this.stats.allowed++;
    const upstreamLevel = this.hub.setLevel(ctx.sid, level, granted.token);
    const loggers = this.relayUpstreams().filter((u) => u.capabilities().logging !== undefined);
    await Promise.allSettled(loggers.map((u) => u.call('logging/setLevel', { level: upstreamLevel }, ctx.signal)));
    return { jsonrpc: '2.0', id: req.id, result: {} };
  }

  /**
   * The common tail of every relayed request: circuit admits? -> rate limit -> budget -> audit
   * the decision -> forward (talos keys already stripped) -> settle -> audit the response.
   */
  private async forward(ctx: RequestContext, req: RpcRequest, f: Forward): Promise<Sealed> {
    const { tool, tokenId } = f;
    // A call its upstream's circuit would refuse spends no rate token and no budget, and leaves
    // one audit entry (the refusal), not an allow and a failed response.
    const admission = f.admit?.();
    if (admission?.refused) {
      const open = circuitOpenRefusal(f.upstream, admission.refused.retryAfterMs);
      return this.wrap(this.deny(ctx, req, tool, tokenId, refuse('upstream_unavailable', open.message, RPC_ERRORS.upstream_unavailable, open.data)));
    }
    try {
      return await this.admitted(ctx, req, f);
    } finally {
      admission?.release();
    }
  }

  private async admitted(ctx: RequestContext, req: RpcRequest, f: Forward): Promise<Sealed> {
    const { tool, tokenId } = f;
    const limited = await this.rateLimit(ctx, req, f.bucket, 1, f.rate, tokenId, tool);
    if (limited) return { response: limited };

    const budget = this.ports.limits.budget;
    let reserved = 0;
    let window = '';
    if (budget && f.cost > 0) {
      let r;
      try {
        r = await this.ports.budget.reserve(ctx.did, f.cost, budget.perAgent);
      } catch (err) {
        return this.wrap(this.deny(ctx, req, tool, tokenId, refuse('limits_unavailable', `the budget store failed: ${(err as Error).message}`, RPC_ERRORS.limits_unavailable)));
      }
      if (!r.ok) {
        return this.wrap(this.deny(ctx, req, tool, tokenId, refuse('budget_exhausted', `the agent's budget has ${r.remaining} left and this call costs ${f.cost}`, RPC_ERRORS.budget_exhausted, { remaining: r.remaining, cost: f.cost })));
      }
      reserved = f.cost;
      window = r.window;
    }

    try {
      await this.ports.audit.append(this.event(ctx, req, tool, 'allow', 'granted', tokenId));
    } catch (err) {
      await this.settle(ctx.did, reserved, 0, window);
      return { response: this.auditFailed(req, err) };
    }
    this.stats.allowed++;

    let response: RpcResponse;
    let outcome: string;
    let actual = reserved;
    try {
      const result = await f.call(req.method, f.params, ctx.signal, progressRelay(ctx, req.params ?? {}));
      this.stats.forwarded++;
      response = { jsonrpc: '2.0', id: req.id, result };
      outcome = result.isError === true ? 'tool_error' : 'ok';
      f.onResult?.();
    } catch (err) {
      if (err instanceof McpError) {
        // The server answered with an error: it did the work of refusing, the call is charged.
        response = rpcError(req.id, err.code, err.message.replace(/^MCP error -?\d+: /, ''), err.data);
        outcome = 'upstream_error';
      } else {
        actual = 0; // never reached a working server: refund
        const reason = err instanceof TunnelError ? err.code : 'upstream_unavailable';
        response = rpcError(req.id, RPC_ERRORS.upstream_unavailable, `talos: ${reason}: ${(err as Error).message}`, {
          talos: { reason, ...((err as TunnelError).data ?? {}) },
        });
        outcome = reason;
      }
    }
    await this.settle(ctx.did, reserved, actual, window);
    const audit = async (msgHash: string): Promise<RpcResponse | undefined> => {
      try {
        await this.ports.audit.append({
          ts: this.now(), kind: 'response', from: f.upstream, to: ctx.did, msg_hash: msgHash,
          method: req.method, ...(tool !== undefined ? { tool } : {}), reason: outcome, ...(tokenId !== undefined ? { token_id: tokenId } : {}),
        });
        return undefined;
      } catch (err) {
        return this.auditFailed(req, err);
      }
    };
    return { response, audit };
  }

  private async wrap(p: Promise<RpcResponse>): Promise<Sealed> {
    return { response: await p };
  }

  /** Settles a reservation (nothing when none was made) in the window it was made in. */
  private async settle(agent: string, reserved: number, actual: number, window: string): Promise<void> {
    if (reserved === 0) return;
    try {
      await this.ports.budget.settle(agent, reserved, actual, window);
    } catch (err) {
      // A failed refund only leaves the agent charged for this call; it never lets more through.
      if (!(err instanceof LimitError)) throw err;
    }
  }
}

/**
 * When the agent asked for progress (params._meta.progressToken) and its session can take
 * notifications, relays the upstream's progress to it under the agent's own token.
 */
function progressRelay(ctx: RequestContext, params: Record<string, unknown>): ((p: Record<string, unknown>) => void) | undefined {
  const meta = params._meta;
  const token = isPlainObject(meta) ? meta.progressToken : undefined;
  if (!ctx.notify || (typeof token !== 'string' && typeof token !== 'number')) return undefined;
  const notify = ctx.notify;
  let sent = 0;
  return (p) => {
    if (++sent > MAX_PROGRESS_PER_REQUEST || ctx.signal?.aborted) return;
    const out: Record<string, unknown> = { progressToken: token, progress: p.progress };
    if (p.total !== undefined) out.total = p.total;
    if (typeof p.message === 'string') out.message = p.message;
    notify({ jsonrpc: '2.0', method: 'notifications/progress', params: out });
  };
}

export function internalError(id: RpcRequest['id'] | null, err: unknown): RpcResponse {
  return rpcError(id, JSONRPC_INTERNAL_ERROR, `talos: internal error (${err instanceof Error ? err.name : 'unknown'})`);
}
