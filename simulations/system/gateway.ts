import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { CapabilityChecker, type CheckResult } from '../../runtime/capability/checker.ts';
import type { RevocationSource } from '../../runtime/capability/revocation.ts';
import { decodeToken } from '../../runtime/capability/token.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';
import { toB64u } from '../../runtime/encoding/base64url.ts';
import { bytesEqual, fromUtf8, utf8 } from '../../runtime/encoding/bytes.ts';
import { TalosError } from '../../runtime/errors.ts';
import { LimitError, type RateRule } from '../../runtime/limits/types.ts';
import type { SecretVault } from '../../runtime/secrets/vault.ts';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../runtime/session/envelope.ts';
import type { LocalIdentity } from '../../runtime/session/handshake.ts';
import { kdfCk } from '../../runtime/session/kdf.ts';
import { decodeHeader } from '../../runtime/session/ratchet.ts';
import { acceptSession, openMessage, sealMessage, type Session } from '../../runtime/session/session.ts';
import { decodeSession, encodeSession } from '../../runtime/session/state-codec.ts';
import type { KeyPair } from '../../runtime/crypto/provider.ts';
import type { Packet } from '../network.ts';
import type { SimRedis } from '../limits.ts';
import { SimDisk } from '../storage.ts';
import type { SimNode, World } from '../world.ts';
import type { AgentRequest, GatewayReply } from './agent.ts';
import { AUDITOR } from './auditor.ts';
import type { Truth } from './truth.ts';
import { UPSTREAM, type ForwardRequest, type ForwardResponse } from './upstream.ts';

/**
 * The simulated gateway: the real session responder (acceptSession / openMessage, state saved
 * with the real state codec), the real capability checker and revocation source, the limits
 * ports (on the simulated Redis), the audit event schema, the secret vault, and opossum's
 * circuit breaker in front of the upstream (its timers run on the simulated clock).
 *
 * Pipeline per request, in this order: decrypt and COMMIT the session state with the call
 * record (one flushed write) before the application sees the request; authorize (capability
 * with `sub` = the session's DID, rate limit, budget); record the decision durably; append it to
 * the audit log and wait for the auditor's acknowledgement (it acks once flushed); only then
 * forward. Replies are cached with the call, so a retransmitted frame gets the same answer.
 */
export const GATEWAY = 'gateway';
export const AUDIT_RETRY_MS = 30;
export const UPSTREAM_TIMEOUT_MS = 150;
export const BREAKER_RESET_MS = 200;
export const CALL_COST = 1;

export interface GatewayConfig {
  rateRule: RateRule;
  budgetLimit: number;
  credentialRef: { purpose: string; id: string };
}

interface CallState {
  peer: string;
  /** Network address the request came from (where replies go). */
  addr: string;
  tool: string;
  args: Record<string, unknown>;
  token: string;
  msgHash: string;
  status: 'new' | 'decided' | 'retry' | 'done';
  allow?: boolean;
  reason?: string;
  tokenId?: string;
  decidedAt?: number;
  reply?: string;
}

export class SimGateway implements SimNode {
  readonly name = GATEWAY;
  readonly kind = 'gateway' as const;
  up = true;
  epoch = 0;
  readonly disk = new SimDisk();
  sessions = new Map<string, Session>();
  private checker!: CapabilityChecker;
  private breaker!: CircuitBreaker<[ForwardRequest], ForwardResponse>;
  private auditWaiters = new Map<string, () => void>();
  private upstreamWaiters = new Map<string, (r: ForwardResponse) => void>();
  /** Frames this gateway opened, with when (for the forward-secrecy check). */
  readonly opened: { frame: string; peer: string; at: number }[] = [];
  private replyCount = 0;

  constructor(
    private readonly world: World,
    private readonly truth: Truth,
    readonly identity: LocalIdentity,
    readonly prekeys: { spk: KeyPair },
    private readonly trustedRoots: string[],
    private readonly revocations: RevocationSource,
    private readonly redis: SimRedis,
    private readonly vault: SecretVault,
    private readonly config: GatewayConfig,
  ) {
    world.scanner.key(identity.sig.secretKey, 'gateway signing key');
    world.scanner.key(identity.dh.secretKey, 'gateway dh key');
    world.scanner.key(prekeys.spk.secretKey, 'gateway signed prekey');
    world.network.attach(this.name, (p) => this.receive(p));
    this.boot();
  }

  private boot(): void {
    this.checker = new CapabilityChecker({
      crypto: this.world.crypto,
      audience: this.identity.did,
      trustedRoots: this.trustedRoots,
      revocations: this.revocations,
    });
    this.breaker = new CircuitBreaker((req: ForwardRequest) => this.callUpstream(req), {
      timeout: UPSTREAM_TIMEOUT_MS,
      resetTimeout: BREAKER_RESET_MS,
      errorThresholdPercentage: 50,
      volumeThreshold: 3,
      rollingCountTimeout: 1000,
      rollingCountBuckets: 10,
      enableSnapshots: false,
      rotateBucketController: new EventEmitter(),
    });
    const trace = this.world.trace;
    this.breaker.on('open', () => trace.state('breaker', 'open'));
    this.breaker.on('halfOpen', () => trace.state('breaker', 'halfOpen'));
    this.breaker.on('close', () => trace.state('breaker', 'closed'));
  }

  private call(callId: string): CallState | undefined {
    const v = this.disk.get(`call:${callId}`);
    return v === undefined ? undefined : (JSON.parse(v) as CallState);
  }

  private async receive(packet: Packet): Promise<void> {
    if (packet.type === 'audit.ack') return this.onAuditAck(packet);
    if (packet.type === 'mcp.result') return this.onUpstreamResult(packet);
    let env: Envelope;
    try {
      env = decodeEnvelope(packet.payload);
    } catch (err) {
      if (err instanceof TalosError) return;
      throw err;
    }
    const crypto = this.world.crypto;
    const msgHash = toB64u(crypto.sha256(utf8(packet.payload)));
    const knownCall = this.disk.get(`env:${msgHash}`);
    if (knownCall !== undefined) {
      const c = this.call(knownCall);
      if (c?.reply) this.world.network.send(this.name, c.addr, 'session.frame', c.reply);
      return;
    }
    const now = this.world.clock(this.name);
    let session = this.sessions.get(env.from);
    const writes: Record<string, string | null> = {};
    let plaintext: Uint8Array;
    try {
      if (!session || (env.type === 'prekey' && !bytesEqual(env.sid, session.sid))) {
        const ek = env.handshake ? toB64u(env.handshake.ek) : '';
        const accepted = acceptSession(
          crypto,
          this.identity,
          env,
          { spk: this.prekeys.spk, requiresPq: false, ekSeen: this.disk.get(`ek:${ek}`) !== undefined },
          now,
        );
        writes[`ek:${ek}`] = '1';
        session = accepted.session;
        plaintext = accepted.plaintext;
      } else {
        const opened = openMessage(crypto, session, env, now);
        session = opened.session;
        plaintext = opened.plaintext;
      }
    } catch (err) {
      if (!(err instanceof TalosError)) throw err;
      const prior = this.sessions.get(env.from);
      if (this.world.broken === 'non-transactional-decrypt' && prior && err.code === 'decrypt_failed') {
        // BROKEN (test-only): the message key is consumed although the frame did not authenticate.
        const spoiled = consumeKeyAnyway(this.world, prior, env, now);
        this.sessions.set(env.from, spoiled);
        this.disk.commit({ [`sess:${env.from}`]: encodeSession(spoiled) });
      }
      return;
    }
    this.world.scanner.key(session.ratchet.rk, 'gateway root key');
    this.world.scanner.key(session.ratchet.dhsSecret, 'gateway ratchet secret');
    const req = JSON.parse(fromUtf8(plaintext)) as AgentRequest;
    const existing = this.call(req.call);
    writes[`sess:${env.from}`] = encodeSession(session);
    writes[`env:${msgHash}`] = req.call;
    const start = !existing || existing.status === 'retry';
    if (start) {
      const fresh: CallState = { peer: env.from, addr: packet.from, tool: req.tool, args: req.args, token: req.token, msgHash, status: 'new' };
      writes[`call:${req.call}`] = JSON.stringify(fresh);
    }
    // One transaction: the new ratchet state, the frame's hash and the call record.
    this.disk.commit(writes);
    this.sessions.set(env.from, session);
    this.opened.push({ frame: packet.payload, peer: env.from, at: this.world.scheduler.now });
    this.truth.deliver(this.name, req.id);
    if (start) this.world.spawn(this.process(req.call, this.epoch));
    else if (existing?.status === 'done' && existing.reply) {
      this.world.network.send(this.name, existing.addr, 'session.frame', existing.reply);
    }
  }

  private authorize(c: CallState, now: number): CheckResult {
    let presentedFor = c.peer;
    if (this.world.broken === 'skip-sub-check') {
      // BROKEN (test-only): the bearer is believed; the token's own `sub` stands in for the session's DID.
      try {
        presentedFor = decodeToken(c.token).sub;
      } catch {
        /* malformed tokens are refused by the checker anyway */
      }
    }
    return this.checker.check(c.token, { method: 'tools/call', tool: c.tool, args: c.args }, presentedFor, now);
  }

  private async process(callId: string, epoch: number): Promise<void> {
    let c = this.call(callId);
    if (!c) return;
    if (c.status === 'new') {
      const now = this.world.clock(this.name);
      const res = this.authorize(c, now);
      let allow = res.ok;
      let reason: string = res.ok ? 'granted' : res.code;
      const tokenId = res.ok ? res.tokenId : tokenIdOf(c.token);
      if (allow) {
        try {
          const rate = await this.redis.rate.take(c.peer, c.tool, this.config.rateRule);
          if (!rate.allowed) [allow, reason] = [false, 'rate_limited'];
          else {
            const b = await this.redis.budget.reserve(c.peer, CALL_COST, this.config.budgetLimit);
            if (!b.ok) [allow, reason] = [false, 'budget_exhausted'];
          }
        } catch (err) {
          if (epoch !== this.epoch) return;
          if (err instanceof LimitError && err.code === 'limits_unavailable') return this.finish(callId, 'retry', 'limits_unavailable');
          throw err;
        }
        if (epoch !== this.epoch) return;
      }
      c = { ...c, status: 'decided', allow, reason, decidedAt: now, ...(tokenId ? { tokenId } : {}) };
      this.disk.commit({ [`call:${callId}`]: JSON.stringify(c) });
      if (allow) this.truth.allowedCalls.push({ agent: c.peer, tool: c.tool, at: this.world.scheduler.now });
      else this.truth.denials++;
    }
    if (c.status !== 'decided') return;
    const event: AuditEvent = {
      ts: c.decidedAt!,
      kind: 'request',
      from: c.peer,
      to: UPSTREAM,
      msg_hash: c.msgHash,
      method: 'tools/call',
      tool: c.tool,
      decision: c.allow ? 'allow' : 'deny',
      reason: c.reason!,
      ...(c.tokenId ? { token_id: c.tokenId } : {}),
    };
    let forwarding: Promise<ForwardResponse | null> | null = null;
    // BROKEN (test-only): forwards while the audit append is still on its way.
    if (c.allow && this.world.broken === 'forward-before-audit') forwarding = this.forward(c, callId);
    if (!(await this.audit(`request:${c.msgHash}`, event, epoch))) return;
    if (!c.allow) return this.finish(callId, 'denied', c.reason);
    const res = await (forwarding ?? this.forward(c, callId));
    if (epoch !== this.epoch) return;
    if (!res || !res.ok) {
      try {
        await this.redis.budget.settle(c.peer, CALL_COST, 0);
      } catch (err) {
        if (!(err instanceof LimitError)) throw err;
      }
      if (epoch !== this.epoch) return;
      return this.finish(callId, 'retry', 'upstream_unavailable');
    }
    const responseEvent: AuditEvent = {
      ts: this.world.clock(this.name),
      kind: 'response',
      from: UPSTREAM,
      to: c.peer,
      msg_hash: toB64u(this.world.crypto.sha256(utf8(JSON.stringify(res)))),
      method: 'tools/call',
      tool: c.tool,
    };
    if (!(await this.audit(`response:${c.msgHash}`, responseEvent, epoch))) return;
    this.finish(callId, 'ok', 'granted', res.result);
  }

  /** Appends to the audit log, retrying until the auditor acknowledges a durable write. */
  private audit(key: string, event: AuditEvent, epoch: number): Promise<boolean> {
    return new Promise((resolve) => {
      let done = false;
      this.auditWaiters.set(key, () => {
        done = true;
        resolve(epoch === this.epoch);
      });
      const send = () => {
        if (done || epoch !== this.epoch) return;
        this.world.network.send(this.name, AUDITOR, 'audit.append', JSON.stringify({ op: 'append', key, event }));
        this.world.scheduler.after(AUDIT_RETRY_MS, 'gateway audit retry', send);
      };
      send();
    });
  }

  private onAuditAck(p: Packet): void {
    const { key } = JSON.parse(p.payload) as { key: string };
    const w = this.auditWaiters.get(key);
    this.auditWaiters.delete(key);
    w?.();
  }

  private async forward(c: CallState, callId: string): Promise<ForwardResponse | null> {
    const secret = await this.vault.get(this.config.credentialRef);
    const req: ForwardRequest = {
      callId,
      msgHash: c.msgHash,
      tool: c.tool,
      args: c.args,
      credential: secret ? fromUtf8(secret) : '',
      decision: { tokenId: c.tokenId, sessionDid: c.peer, nowMs: c.decidedAt! },
    };
    try {
      return await this.breaker.fire(req);
    } catch {
      return null; // timeout, upstream error or breaker open: a transient failure
    }
  }

  private callUpstream(req: ForwardRequest): Promise<ForwardResponse> {
    return new Promise((resolve, reject) => {
      this.upstreamWaiters.set(req.callId, (r) => (r.ok ? resolve(r) : reject(new Error(r.error ?? 'upstream_error'))));
      this.world.network.send(this.name, UPSTREAM, 'mcp.call', JSON.stringify(req));
    });
  }

  private onUpstreamResult(p: Packet): void {
    const res = JSON.parse(p.payload) as ForwardResponse;
    const w = this.upstreamWaiters.get(res.callId);
    this.upstreamWaiters.delete(res.callId);
    w?.(res);
  }

  /** Seals the answer, commits it with the session and the call record, then sends it. */
  private finish(callId: string, status: GatewayReply['status'], reason?: string, result?: string): void {
    const c = this.call(callId);
    if (!c) return;
    const session = this.sessions.get(c.peer);
    if (!session) return;
    const reply: GatewayReply = { id: `gateway:r${this.replyCount++}:${callId}`, call: callId, status };
    if (reason) reply.reason = reason;
    if (result) reply.result = result;
    const sealed = sealMessage(this.world.crypto, session, utf8(JSON.stringify(reply)));
    const frame = encodeEnvelope(sealed.envelope);
    const next: CallState = { ...c, status: status === 'retry' ? 'retry' : 'done', reply: frame };
    this.disk.commit({ [`sess:${c.peer}`]: encodeSession(sealed.session), [`call:${callId}`]: JSON.stringify(next) });
    this.sessions.set(c.peer, sealed.session);
    this.world.scanner.key(sealed.session.ratchet.rk, 'gateway root key');
    if (sealed.session.ratchet.cks) this.world.scanner.key(sealed.session.ratchet.cks, 'gateway sending chain key');
    this.world.network.send(this.name, c.addr, 'session.frame', frame);
  }

  crash(): void {
    this.disk.crash();
    this.sessions = new Map();
    this.auditWaiters = new Map();
    this.upstreamWaiters = new Map();
    this.breaker.shutdown();
  }

  /** Restores sessions and unfinished calls from the store, then resumes those calls. */
  restart(): void {
    this.boot();
    for (const k of this.disk.keys('sess:')) this.sessions.set(k.slice(5), decodeSession(this.disk.getDurable(k)!));
    for (const k of this.disk.keys('call:')) {
      const c = JSON.parse(this.disk.getDurable(k)!) as CallState;
      if (c.status === 'new' || c.status === 'decided') this.world.spawn(this.process(k.slice(5), this.epoch));
    }
  }
}

function tokenIdOf(compact: string): string | undefined {
  try {
    return decodeToken(compact).id;
  } catch {
    return undefined;
  }
}

/**
 * What a non-transactional decryption commits for a frame that failed to authenticate: the
 * receiving chain advanced past the frame's index, the key used up. Test-only (`__broken`).
 */
function consumeKeyAnyway(world: World, s: Session, env: Envelope, now: number): Session {
  let h;
  try {
    h = decodeHeader(env.header);
  } catch {
    return s;
  }
  const r = s.ratchet;
  const skippedHere = r.skipped.findIndex((k) => k.n === h.n && bytesEqual(k.dh, h.dh));
  if (skippedHere >= 0) return { ...s, ratchet: { ...r, skipped: r.skipped.filter((_, i) => i !== skippedHere) } };
  if (!r.dhr || !r.ckr || !bytesEqual(h.dh, r.dhr) || h.n < r.nr) return s;
  let ck = r.ckr;
  const skipped = [...r.skipped];
  for (let i = r.nr; i < h.n; i++) {
    const step = kdfCk(world.crypto, ck);
    skipped.push({ dh: r.dhr, n: i, mk: step.mk, ts: now });
    ck = step.ck;
  }
  ck = kdfCk(world.crypto, ck).ck;
  return { ...s, ratchet: { ...r, ckr: ck, nr: h.n + 1, skipped } };
}
