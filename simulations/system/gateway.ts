import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { CircuitGate } from '../../actors/upstream/circuit.ts';
import { CapabilityChecker } from '../../runtime/capability/checker.ts';
import type { RevocationSource } from '../../runtime/capability/revocation.ts';
import { decodeToken } from '../../runtime/capability/token.ts';
import type { RpcRequest, RpcResponse } from '../../runtime/mcp/jsonrpc.ts';
import { GatewayPipeline, type AuditSink, type Authorizer, type ToolRouter } from '../../runtime/mcp/pipeline.ts';
import { toB64u } from '../../runtime/encoding/base64url.ts';
import { bytesEqual, fromUtf8, utf8 } from '../../runtime/encoding/bytes.ts';
import { TalosError } from '../../runtime/errors.ts';
import type { RateRule } from '../../runtime/limits/types.ts';
import type { SecretVault } from '../../runtime/secrets/vault.ts';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../runtime/session/envelope.ts';
import type { LocalIdentity } from '../../runtime/session/handshake.ts';
import { kdfCk } from '../../runtime/session/kdf.ts';
import { decodeHeader } from '../../runtime/session/ratchet.ts';
import { acceptSession, openMessage, sealMessage, type Session } from '../../runtime/session/session.ts';
import { decodeSession, encodeSession } from '../../runtime/session/state-codec.ts';
import type { KeyPair } from '../../runtime/crypto/provider.ts';
import { INVARIANTS } from '../invariants.ts';
import type { Packet } from '../network.ts';
import type { SimRedis } from '../limits.ts';
import { SimDisk } from '../storage.ts';
import type { SimNode, World } from '../world.ts';
import { AUDITOR } from './auditor.ts';
import { failOpenLimits, sharedLimits, watchedLimits, type LimitPorts } from './limit-ports.ts';
import { noteRatchetKeys } from './ratchet-keys.ts';
import type { Truth } from './truth.ts';
import { UPSTREAM, type ForwardRequest, type ForwardResponse } from './upstream.ts';

/**
 * The simulated gateway: the real session responder (acceptSession / openMessage, state saved
 * with the real state codec), the real capability checker and revocation source, the limits
 * ports (on the simulated Redis), the audit event schema, the secret vault, and opossum's
 * circuit breaker in front of the upstream (its timers run on the simulated clock).
 *
 * Per request: decrypt and COMMIT the session state with the call record (one flushed write)
 * before the application sees the request; then the real GatewayPipeline (authorize with
 * `sub` = the session's DID, rate limit, budget, audit append acknowledged once durable, and
 * only then forward). Replies are committed beside the call, so a retransmitted frame gets the
 * same answer; calls committed but unanswered at a crash are run again after the restart, up to
 * the upstream: one that may already have reached it (marked `fwd:<id>` before it was sent) is
 * never sent twice, since the upstream is an application that would run it twice. It is
 * answered upstream_unavailable instead (the agent may try again, as a new attempt).
 */
export const GATEWAY = 'gateway';
export const AUDIT_RETRY_MS = 30;
export const UPSTREAM_TIMEOUT_MS = 150;
export const BREAKER_RESET_MS = 200;
/** The breaker's rolling window: failures older than this no longer count toward opening it. */
const BREAKER_WINDOW_MS = 1000;
const BREAKER_BUCKETS = 10;
export const CALL_COST = 1;
/** The tools the simulated upstream offers. */
export const UPSTREAM_TOOLS: readonly string[] = ['read_text_file', 'search'];

export interface GatewayConfig {
  rateRule: RateRule;
  budgetLimit: number;
  credentialRef: { purpose: string; id: string };
}

/** A call as committed with the frame that carried it; its sealed reply is committed apart (`reply:<id>`) once there is one. */
interface CallState {
  peer: string;
  /** Network address the request came from (where replies go). */
  addr: string;
  rpc: RpcRequest;
  msgHash: string;
}

export class SimGateway implements SimNode {
  readonly name = GATEWAY;
  readonly kind = 'gateway' as const;
  up = true;
  epoch = 0;
  readonly disk = new SimDisk();
  sessions = new Map<string, Session>();
  private checker!: CapabilityChecker;
  /** Rebuilt at each boot; read by tests. */
  breaker!: CircuitBreaker<[ForwardRequest], ForwardResponse>;
  /** As the real upstream actor's: asked before a call spends anything. */
  private gate!: CircuitGate;
  private auditWaiters = new Map<string, () => void>();
  private upstreamWaiters = new Map<string, (r: ForwardResponse) => void>();
  /** Frames this gateway opened, with when (for the forward-secrecy check). */
  readonly opened: { frame: string; peer: string; at: number }[] = [];

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
    world.trace.actor('breaker');
    this.boot();
  }

  private boot(): void {
    this.checker = new CapabilityChecker({
      crypto: this.world.crypto,
      audience: this.identity.did,
      trustedRoots: this.trustedRoots,
      revocations: this.revocations,
    });
    const rotations = new EventEmitter();
    this.breaker = new CircuitBreaker((req: ForwardRequest) => this.callUpstream(req), {
      timeout: UPSTREAM_TIMEOUT_MS,
      resetTimeout: BREAKER_RESET_MS,
      errorThresholdPercentage: 50,
      volumeThreshold: 3,
      rollingCountTimeout: BREAKER_WINDOW_MS,
      rollingCountBuckets: BREAKER_BUCKETS,
      enableSnapshots: false,
      rotateBucketController: rotations,
    });
    this.gate = new CircuitGate(this.breaker, BREAKER_RESET_MS, () => this.world.scheduler.now);
    // The breaker's rolling window turns on simulated time: one bucket per tick, for as long as
    // this incarnation of the gateway lives (a crash ends it; the restart boots a new breaker).
    const epoch = this.epoch;
    const tick = () => {
      if (epoch !== this.epoch) return;
      rotations.emit('rotate');
      this.world.scheduler.after(BREAKER_WINDOW_MS / BREAKER_BUCKETS, 'breaker window', tick);
    };
    this.world.scheduler.after(BREAKER_WINDOW_MS / BREAKER_BUCKETS, 'breaker window', tick);
    const trace = this.world.trace;
    this.breaker.on('open', () => trace.state('breaker', 'open'));
    this.breaker.on('halfOpen', () => trace.state('breaker', 'halfOpen'));
    this.breaker.on('close', () => trace.state('breaker', 'closed'));
  }

  private call(callId: string): CallState | undefined {
    const v = this.disk.get(`call:${callId}`);
    return v === undefined ? undefined : (JSON.parse(v) as CallState);
  }

  /** The sealed reply to a call, once committed. */
  private reply(callId: string): string | undefined {
    return this.disk.get(`reply:${callId}`);
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
      const reply = this.reply(knownCall);
      if (reply !== undefined) this.world.network.send(this.name, this.call(knownCall)!.addr, 'session.frame', reply);
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
    noteRatchetKeys(this.world.scanner, this.name, session.ratchet);
    const req = JSON.parse(fromUtf8(plaintext)) as RpcRequest;
    const id = String(req.id);
    const existing = this.call(id);
    writes[`sess:${env.from}`] = encodeSession(session);
    writes[`env:${msgHash}`] = id;
    const start = !existing;
    const fresh: CallState | undefined = start ? { peer: env.from, addr: packet.from, rpc: req, msgHash } : undefined;
    if (fresh) writes[`call:${id}`] = JSON.stringify(fresh);
    // One transaction: the new ratchet state, the frame's hash and the call record.
    this.disk.commit(writes);
    this.sessions.set(env.from, session);
    this.opened.push({ frame: packet.payload, peer: env.from, at: this.world.scheduler.now });
    this.truth.deliver(this.name, id);
    // The record just committed is handed over as is: reading it back would parse what we just wrote.
    if (fresh) this.world.spawn(this.process(id, this.epoch, fresh));
    else {
      const reply = this.reply(id);
      if (reply !== undefined) this.world.network.send(this.name, existing!.addr, 'session.frame', reply);
    }
  }

  /**
   * Runs one request through the REAL gateway pipeline (runtime/mcp/pipeline.ts), built per
   * request so its ports can carry the request's identity to the simulated upstream. Ports:
   * the capability checker (authorizer), the simulated auditor (audit sink: resolves once the
   * append is durable), the limits ports on the simulated Redis, and a router whose single
   * upstream sits behind opossum's breaker.
   */
  private async process(callId: string, epoch: number, committed?: CallState): Promise<void> {
    const c = committed ?? this.call(callId);
    if (!c || this.reply(callId) !== undefined) return;
    const world = this.world;
    let decision: ForwardRequest['decision'] | undefined;
    const authorizer: Authorizer = {
      check: (token, request, sessionDid, nowMs) => {
        let subject = sessionDid;
        if (world.broken === 'skip-sub-check') {
          // BROKEN (test-only): the bearer is believed; the token's own `sub` stands in for the session's DID.
          subject = tokenSubOf(token) ?? sessionDid;
        }
        const r = this.checker.check(token, request, subject, nowMs);
        if (r.ok) decision = this.truth.decisionFor(callId, world.clock(this.name));
        return r;
      },
    };
    const limits = watchedLimits(this.limitPorts(), this.redis);
    const audit: AuditSink = {
      append: (event) => {
        if (event.kind === 'request' && event.decision === 'allow' && event.tool !== undefined) {
          this.truth.allowedCalls.push({ agent: c.peer, tool: event.tool, at: world.scheduler.now });
          // Every tool call here costs CALL_COST against a budget, so both limits must have said yes.
          world.invariants.check(INVARIANTS.limitsFailClosed, limits.granted(), () => `call ${callId} was allowed without a grant of its rate limit and budget from a reachable store`);
        }
        const key = `${event.kind}:${event.msg_hash}:${event.decision ?? ''}:${event.reason ?? ''}`;
        const durable = this.audit(key, event, epoch);
        // BROKEN (test-only): the sink answers before the auditor has made the entry durable.
        if (world.broken === 'forward-before-audit') return Promise.resolve();
        return durable;
      },
    };
    const route = (name: string) => ({ name, upstream: UPSTREAM, upstreamName: name, definition: { name, inputSchema: { type: 'object' } } });
    const router: ToolRouter = {
      tools: () => UPSTREAM_TOOLS.map(route),
      resolve: (name) => {
        if (!UPSTREAM_TOOLS.includes(name)) return undefined;
        return {
          tool: route(name),
          admit: this.gate.admit,
          call: async (_method, params) => {
            const res = await this.forward(callId, c.msgHash, name, (params?.arguments ?? {}) as Record<string, unknown>, decision!);
            if (!res || !res.ok) throw new Error('the upstream did not answer');
            return { content: [{ type: 'text', text: res.result ?? '' }] };
          },
        };
      },
    };
    const pipeline = new GatewayPipeline({
      authorizer,
      audit,
      rate: limits.rate,
      budget: limits.budget,
      limits: { rate: this.config.rateRule, budget: { perAgent: this.config.budgetLimit, windowSeconds: 3600 }, defaultCost: CALL_COST, tools: {} },
      router,
      gatewayDid: this.identity.did,
      now: () => world.clock(this.name),
    });
    const response = await pipeline.handle({ did: c.peer, msgHash: c.msgHash }, c.rpc);
    if (epoch !== this.epoch) return;
    // Same epoch: no crash since `c` was read, and only finish() commits a reply.
    this.finish(callId, c, response);
  }

  /** The rate and budget ports on the simulated Redis (or a broken pair, test-only). */
  private limitPorts(): LimitPorts {
    const ports = { rate: this.redis.rate, budget: this.redis.budget };
    if (this.world.broken === 'shared-limits') return sharedLimits(ports);
    if (this.world.broken === 'limits-fail-open') return failOpenLimits(ports);
    return ports;
  }

  /** Appends to the audit log, retrying until the auditor acknowledges a durable write. */
  private audit(key: string, event: unknown, epoch: number): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      this.auditWaiters.set(key, () => {
        done = true;
        if (epoch === this.epoch) resolve();
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

  private async forward(callId: string, msgHash: string, tool: string, args: Record<string, unknown>, decision: ForwardRequest['decision']): Promise<ForwardResponse | null> {
    // Sent in an earlier life, it may have run: never sent twice. (BROKEN, test-only:
    // resend-after-restart sends it again.)
    if (this.disk.get(`fwd:${callId}`) !== undefined && this.world.broken !== 'resend-after-restart') {
      throw new Error('the gateway restarted after sending this call to the upstream, which may have run it: it is not sent twice');
    }
    const secret = await this.vault.get(this.config.credentialRef);
    const req: ForwardRequest = { callId, msgHash, tool, args, credential: secret ? fromUtf8(secret) : '', decision };
    try {
      return await this.breaker.fire(req);
    } catch (err) {
      // As the real upstream actor: a call the breaker did not let through says so.
      const refused = this.gate.refusal(err, UPSTREAM);
      if (refused) throw refused;
      return null; // timeout or upstream error: a transient failure
    }
  }

  private callUpstream(req: ForwardRequest): Promise<ForwardResponse> {
    return new Promise((resolve, reject) => {
      this.upstreamWaiters.set(req.callId, (r) => (r.ok ? resolve(r) : reject(new Error(r.error ?? 'upstream_error'))));
      // Durable before the call leaves (and only for a call that leaves: the breaker may refuse
      // it first): a restart must know it may have reached the upstream.
      this.disk.commit({ [`fwd:${req.callId}`]: '1' });
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
  private finish(callId: string, c: CallState, response: RpcResponse): void {
    const session = this.sessions.get(c.peer);
    if (!session) return;
    const sealed = sealMessage(this.world.crypto, session, utf8(JSON.stringify(response)));
    const frame = encodeEnvelope(sealed.envelope);
    this.disk.commit({ [`sess:${c.peer}`]: encodeSession(sealed.session), [`reply:${callId}`]: frame, [`fwd:${callId}`]: null });
    this.sessions.set(c.peer, sealed.session);
    noteRatchetKeys(this.world.scanner, this.name, sealed.session.ratchet);
    this.world.network.send(this.name, c.addr, 'session.frame', frame);
  }

  crash(): void {
    this.disk.crash();
    this.checker.close();
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
      const callId = k.slice(5);
      if (this.disk.getDurable(`reply:${callId}`) === undefined) this.world.spawn(this.process(callId, this.epoch));
    }
  }
}

function tokenSubOf(compact: string): string | undefined {
  try {
    return decodeToken(compact).sub;
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
