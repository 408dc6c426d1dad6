import { createHash } from 'node:crypto';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js';
import type { AccessRequest, CheckResult } from '../capability/index.ts';
import type { AuditEvent } from '../audit/event.ts';
import { toolLimits, type LimitsConfig } from '../config/config.ts';
import { LimitError, type BudgetLedger, type RateLimiter } from '../limits/types.ts';
import { JSONRPC_INTERNAL_ERROR, JSONRPC_INVALID_PARAMS, JSONRPC_METHOD_NOT_FOUND, RPC_ERRORS, TunnelError } from './errors.ts';
import { TOOL_NAME, isPlainObject, rpcError, type RpcNotification, type RpcRequest, type RpcResponse } from './jsonrpc.ts';
import { capabilityFrom, stripTalosMeta } from './meta.ts';

/**
 * The gateway's per-request pipeline. For every JSON-RPC request that arrives through a session:
 *   classify (method, tool, arguments) -> authorize (capability checker, sub = session DID)
 *   -> tool known and not drifted -> rate limit (agent, tool) -> reserve budget (agent)
 *   -> append the decision to the audit log (BEFORE forwarding) -> strip every talos _meta key
 *   -> forward through the upstream's breaker -> settle the budget -> audit the response.
 * A refusal at any step is audited as a denial and answered as a JSON-RPC error whose
 * data.talos.reason names the refusal. The gateway is itself the MCP server the agent sees:
 * it answers initialize and ping, and merges the upstreams' tools/list, filtered to the tools
 * the capability grants.
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
  resolve(name: string): { tool: RoutedTool; call: (method: string, params: Record<string, unknown> | undefined, signal?: AbortSignal, onProgress?: (progress: Record<string, unknown>) => void) => Promise<Record<string, unknown>> } | 'drift' | undefined;
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
}

/** Progress notifications relayed to an agent per request at most (a chatty upstream is cut off). */
export const MAX_PROGRESS_PER_REQUEST = 10_000;

/** The rate bucket of tools/list: it holds a space, which no tool name can, so no tool shares it. */
export const LIST_BUCKET = 'tools/list (listing)';

export function sha256b64u(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('base64url');
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

  constructor(private readonly ports: PipelinePorts) {
    this.now = ports.now ?? Date.now;
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
  async handleSealed(ctx: RequestContext, req: RpcRequest): Promise<{ response: RpcResponse; audit?: (msgHash: string) => Promise<RpcResponse | undefined> }> {
    if (req.method === 'tools/call') return this.callTool(ctx, req);
    return { response: await this.handleLocal(ctx, req) };
  }

  private async handleLocal(ctx: RequestContext, req: RpcRequest): Promise<RpcResponse> {
    switch (req.method) {
      case 'initialize':
        return this.local(ctx, req, this.initializeResult(req));
      case 'ping':
        return this.local(ctx, req, {});
      case 'tools/list':
        return this.listTools(ctx, req);
      default:
        return this.deny(ctx, req, undefined, undefined, refuse('method_not_supported', `the gateway does not relay ${req.method}`, JSONRPC_METHOD_NOT_FOUND));
    }
  }

  private initializeResult(req: RpcRequest): Record<string, unknown> {
    const asked = req.params?.protocolVersion;
    const protocolVersion = typeof asked === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(asked) ? asked : LATEST_PROTOCOL_VERSION;
    return {
      protocolVersion,
      capabilities: { tools: { listChanged: false } },
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

  private async authorize(ctx: RequestContext, token: string | undefined, request: AccessRequest): Promise<CheckResult | Refusal> {
    // A token the checker has not verified yet may be verified off this thread first.
    if (token === undefined) return refuse('capability_missing', 'the request carries no capability token');
    const warming = this.ports.authorizer.warm?.(token);
    if (warming) await warming;
    return this.ports.authorizer.check(token, request, ctx.did, this.now());
  }

  private async listTools(ctx: RequestContext, req: RpcRequest): Promise<RpcResponse> {
    const token = capabilityFrom(req.params);
    if (token === undefined) return this.deny(ctx, req, undefined, undefined, refuse('capability_missing', 'the request carries no capability token'));
    const warming = this.ports.authorizer.warm?.(token);
    if (warming) await warming;
    const visible: Record<string, unknown>[] = [];
    let tokenId: string | undefined;
    for (const t of this.ports.router.tools()) {
      const r = this.ports.authorizer.check(token, { method: 'tools/call', tool: t.name, args: {} }, ctx.did, this.now());
      if (r.ok) tokenId = r.tokenId;
      // arg_violation with empty arguments: the grant names this tool but constrains its arguments.
      if (r.ok || r.code === 'arg_violation') visible.push({ ...t.definition, name: t.name });
      else if (r.code !== 'no_matching_grant') return this.deny(ctx, req, undefined, undefined, refuse(r.code, r.message));
    }
    const limited = await this.rateLimit(ctx, req, LIST_BUCKET, 1, this.ports.limits.rate, tokenId);
    if (limited) return limited;
    try {
      await this.ports.audit.append(this.event(ctx, req, undefined, 'allow', 'granted', tokenId));
    } catch (err) {
      return this.auditFailed(req, err);
    }
    this.stats.allowed++;
    return { jsonrpc: '2.0', id: req.id, result: { tools: visible } };
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

  private async callTool(ctx: RequestContext, req: RpcRequest): Promise<{ response: RpcResponse; audit?: (msgHash: string) => Promise<RpcResponse | undefined> }> {
    const params = req.params ?? {};
    const name = params.name;
    if (typeof name !== 'string' || !TOOL_NAME.test(name)) {
      return this.wrap(this.deny(ctx, req, undefined, undefined, refuse('invalid_tool_name', 'params.name must be a tool name', JSONRPC_INVALID_PARAMS)));
    }
    const args = params.arguments === undefined ? {} : params.arguments;
    if (!isPlainObject(args)) return this.wrap(this.deny(ctx, req, name, undefined, refuse('invalid_arguments', 'params.arguments must be an object', JSONRPC_INVALID_PARAMS)));

    const auth = await this.authorize(ctx, capabilityFrom(params), { method: 'tools/call', tool: name, args });
    if ('reason' in auth) return this.wrap(this.deny(ctx, req, name, undefined, auth));
    if (!auth.ok) {
      const data = auth.arg !== undefined ? { arg: auth.arg } : undefined;
      return this.wrap(this.deny(ctx, req, name, undefined, refuse(auth.code, auth.message, RPC_ERRORS.unauthorized, data)));
    }
    const tokenId = auth.tokenId;

    const route = this.ports.router.resolve(name);
    if (route === 'drift') {
      return this.wrap(this.deny(ctx, req, name, tokenId, refuse('tool_drift', `the definition of ${name} changed since it was pinned; an operator must re-pin it`, RPC_ERRORS.tool_drift)));
    }
    if (route === undefined) return this.wrap(this.deny(ctx, req, name, tokenId, refuse('unknown_tool', `no upstream offers ${name}`, JSONRPC_INVALID_PARAMS)));

    const { cost, rate } = toolLimits(this.ports.limits, name);
    const limited = await this.rateLimit(ctx, req, name, 1, rate, tokenId, name);
    if (limited) return { response: limited };

    const budget = this.ports.limits.budget;
    let reserved = 0;
    if (budget && cost > 0) {
      let r;
      try {
        r = await this.ports.budget.reserve(ctx.did, cost, budget.perAgent);
      } catch (err) {
        return this.wrap(this.deny(ctx, req, name, tokenId, refuse('limits_unavailable', `the budget store failed: ${(err as Error).message}`, RPC_ERRORS.limits_unavailable)));
      }
      if (!r.ok) {
        return this.wrap(this.deny(ctx, req, name, tokenId, refuse('budget_exhausted', `the agent's budget has ${r.remaining} left and this call costs ${cost}`, RPC_ERRORS.budget_exhausted, { remaining: r.remaining, cost })));
      }
      reserved = cost;
    }

    try {
      await this.ports.audit.append(this.event(ctx, req, name, 'allow', 'granted', tokenId));
    } catch (err) {
      await this.refund(ctx.did, reserved);
      return { response: this.auditFailed(req, err) };
    }
    this.stats.allowed++;

    // The capability (and every other talos key) stops here.
    const upstreamParams = { ...stripTalosMeta(params), name: route.tool.upstreamName };
    let response: RpcResponse;
    let outcome: string;
    let actual = reserved;
    try {
      const result = await route.call('tools/call', upstreamParams, ctx.signal, progressRelay(ctx, params));
      this.stats.forwarded++;
      response = { jsonrpc: '2.0', id: req.id, result };
      outcome = result.isError === true ? 'tool_error' : 'ok';
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
    if (reserved > 0) await this.settle(ctx.did, reserved, actual);
    const audit = async (msgHash: string): Promise<RpcResponse | undefined> => {
      try {
        await this.ports.audit.append({
          ts: this.now(), kind: 'response', from: route.tool.upstream, to: ctx.did, msg_hash: msgHash,
          method: req.method, tool: name, reason: outcome, token_id: tokenId,
        });
        return undefined;
      } catch (err) {
        return this.auditFailed(req, err);
      }
    };
    return { response, audit };
  }

  private async wrap(p: Promise<RpcResponse>): Promise<{ response: RpcResponse }> {
    return { response: await p };
  }

  private async refund(agent: string, reserved: number): Promise<void> {
    if (reserved > 0) await this.settle(agent, reserved, 0);
  }

  private async settle(agent: string, reserved: number, actual: number): Promise<void> {
    try {
      await this.ports.budget.settle(agent, reserved, actual);
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
