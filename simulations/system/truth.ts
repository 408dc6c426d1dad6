import { INVARIANTS } from '../invariants.ts';
import type { World } from '../world.ts';
import { callIdOfAttempt } from './agent.ts';

/**
 * What actually happened, recorded by an all-seeing observer outside the system under test,
 * and the independent policy oracle. The oracle re-states the scenario's policy from the
 * tokens the scenario minted (ground truth), with none of the capability module's code: a
 * call is allowed only to the token's own subject, for a granted tool, with a path under the
 * granted prefix, inside the validity window, and not after the gateway learned a revocation.
 */
export interface PolicyToken {
  id: string;
  sub: string;
  tools: readonly string[];
  /** Canonical relative prefix the `path` argument must stay under (for tools that take one). */
  pathPrefix: string;
  nbfMs: number;
  expMs: number;
}

export interface CallRecord {
  callId: string;
  agent: string;
  /** The sending agent's DID and the id of the token it really presented (an insider may present another's). */
  agentDid: string;
  tokenId: string | undefined;
  tool: string;
  args: Record<string, unknown>;
  issuedAt: number;
  settledAt?: number;
  outcome?: 'ok' | 'denied';
  /** The gateway's reason for a refusal that stands. */
  reason?: string;
}

/** An allow decision as the oracle judges it (Truth.decisionFor). */
export interface Decision {
  tokenId: string | undefined;
  sessionDid: string;
  /** The gateway's clock as the simulator reads it. */
  nowMs: number;
  /** Its place among decisions and revocations (a decision judged at the end: Infinity). */
  order: number;
}

export class Truth {
  readonly tokens = new Map<string, PolicyToken>();
  /** Compact (wire) form of each minted token -> its id: what an agent presents, as the simulator knows it. */
  readonly tokenIds = new Map<string, string>();
  /**
   * token id -> when the gateway learned the revocation, as a place in the order of
   * revocations and decisions: a clock reading cannot order a decision and a revocation in
   * the same millisecond, and the decision taken first stands.
   */
  private readonly revokedAt = new Map<string, number>();
  private order = 0;
  readonly calls = new Map<string, CallRecord>();
  private readonly delivered = new Map<string, Set<string>>();
  readonly allowedCalls: { agent: string; tool: string; at: number }[] = [];
  forwards = 0;
  denials = 0;

  constructor(private readonly world: World) {}

  issue(call: CallRecord): void {
    this.calls.set(call.callId, call);
  }

  settle(callId: string, outcome: 'ok' | 'denied', reason?: string): void {
    const c = this.calls.get(callId);
    if (!c || c.settledAt !== undefined) return;
    c.settledAt = this.world.scheduler.now;
    c.outcome = outcome;
    if (reason !== undefined) c.reason = reason;
  }

  /** An application (gateway, agent or upstream) received message `msgId`: it must be the first time. */
  deliver(receiver: string, msgId: string): void {
    let seen = this.delivered.get(receiver);
    if (!seen) this.delivered.set(receiver, (seen = new Set()));
    const dup = seen.has(msgId);
    seen.add(msgId);
    this.world.invariants.check(INVARIANTS.deliveredOnce, !dup, () => `message ${msgId} delivered twice to ${receiver}`);
  }

  /**
   * The gateway has learned that `tokenId` is revoked: everything decided from now on must
   * refuse it. A second revocation of the same token changes nothing.
   */
  revoked(tokenId: string): void {
    if (!this.revokedAt.has(tokenId)) this.revokedAt.set(tokenId, this.order++);
  }

  /**
   * What the oracle judges an allow decision on, from the simulator's own records: who really
   * sent the request (an attempt at a call, agent.ts), the token they really presented, and the gateway's clock as the
   * simulator reads it. Never the inputs the pipeline handed to the checker: a pipeline bug in
   * those (a stale clock, the wrong session) would be shared by an oracle that trusted them.
   */
  decisionFor(requestId: string, gatewayNowMs: number): Decision {
    const c = this.calls.get(callIdOfAttempt(requestId));
    return { tokenId: c?.tokenId, sessionDid: c?.agentDid ?? '(no such call)', nowMs: gatewayNowMs, order: this.order++ };
  }

  /** The oracle's verdict on an allow decision; refusing reasons are returned as text. */
  oracleRefuses(d: Decision & { tool: string; args: Record<string, unknown> }): string | null {
    const tok = d.tokenId === undefined ? undefined : this.tokens.get(d.tokenId);
    if (!tok) return 'unknown token';
    if (tok.sub !== d.sessionDid) return `token subject ${tok.sub} is not the session's ${d.sessionDid}`;
    if (!tok.tools.includes(d.tool)) return `tool ${d.tool} not granted`;
    if ('path' in d.args) {
      const p = d.args.path;
      if (typeof p !== 'string' || !underPrefix(p, tok.pathPrefix)) return `path ${String(p)} outside ${tok.pathPrefix}`;
    }
    if (d.nowMs < tok.nbfMs) return 'not yet valid';
    if (d.nowMs >= tok.expMs) return 'expired';
    const rev = this.revokedAt.get(tok.id);
    if (rev !== undefined && rev < d.order) return 'revoked';
    return null;
  }

  unsettled(): CallRecord[] {
    return [...this.calls.values()].filter((c) => c.settledAt === undefined);
  }
}

/** Simple, separate path rule: plain segments under the prefix, nothing special allowed. */
function underPrefix(path: string, prefix: string): boolean {
  const segs = path.split('/');
  if (segs.some((s) => s === '' || s === '.' || s === '..' || s.includes('\\') || s.includes('\0'))) return false;
  const pre = prefix.split('/');
  return segs.length > pre.length && pre.every((s, i) => segs[i] === s);
}
