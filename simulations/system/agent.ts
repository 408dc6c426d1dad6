import type { Offer, Session } from '../../runtime/session/session.ts';
import { initiateSession, openMessage, sealMessage } from '../../runtime/session/session.ts';
import { decodeEnvelope, encodeEnvelope } from '../../runtime/session/envelope.ts';
import type { LocalIdentity } from '../../runtime/session/handshake.ts';
import { fromUtf8, utf8 } from '../../runtime/encoding/bytes.ts';
import { TalosError } from '../../runtime/errors.ts';
import type { RpcRequest, RpcResponse } from '../../runtime/mcp/jsonrpc.ts';
import { withCapability } from '../../runtime/mcp/meta.ts';
import type { Packet } from '../network.ts';
import type { Rng } from '../random.ts';
import type { SimNode, World } from '../world.ts';
import type { Truth } from './truth.ts';
import { noteRatchetKeys } from './ratchet-keys.ts';

/**
 * A simulated agent: the real X3DH handshake and Double Ratchet (runtime/session), the real
 * envelope codec, and an MCP-like request carrying its capability token inside the encrypted
 * payload. It retransmits the same frame while a call is unanswered (exponential backoff, so a
 * lost or duplicated frame is the network's problem, not the application's), and sends a new
 * attempt when the gateway answers "retry" (a transient refusal).
 */
export const RETRANSMIT_MS = 60;
export const MAX_RETRANSMIT_MS = 400;
/**
 * After a transient refusal: wait RETRY_AFTER_MS, doubling per retry up to MAX_RETRY_AFTER_MS,
 * or longer when the gateway says when to come back (retryAfterMs, capped the same).
 */
export const RETRY_AFTER_MS = 50;
export const MAX_RETRY_AFTER_MS = 800;

/** The JSON-RPC id of an attempt at a call: `<callId>#<attempt>`, attempts counted from 1. */
export const attemptId = (callId: string, attempt: number): string => `${callId}#${attempt}`;
export const callIdOfAttempt = (requestId: string): string => requestId.slice(0, requestId.lastIndexOf('#'));

/** Gateway refusals that are about the moment, not the request: the agent tries again. */
export const TRANSIENT_REASONS = new Set(['limits_unavailable', 'upstream_unavailable', 'audit_unavailable']);

/** What the gateway said of a refusal (error.data.talos), if anything. */
function talosData(response: RpcResponse): { reason?: unknown; retryAfterMs?: unknown } | undefined {
  return 'error' in response ? (response.error.data as { talos?: { reason?: unknown; retryAfterMs?: unknown } } | undefined)?.talos : undefined;
}

/** The gateway's reason for a refusal (error.data.talos.reason), if it gave one. */
export function refusalReason(response: RpcResponse): string | undefined {
  const reason = talosData(response)?.reason;
  return typeof reason === 'string' ? reason : undefined;
}

/** How long to wait before the next attempt after `retries` transient refusals, this one included. */
export function retryWait(response: RpcResponse, retries: number): number {
  const backoff = Math.min(MAX_RETRY_AFTER_MS, RETRY_AFTER_MS * 2 ** retries);
  const hint = talosData(response)?.retryAfterMs;
  return typeof hint === 'number' && hint > backoff ? Math.min(hint, MAX_RETRY_AFTER_MS) : backoff;
}

/** ok: a result; denied: a refusal that stands; retry: a transient refusal. */
export function classify(response: RpcResponse): 'ok' | 'denied' | 'retry' {
  if ('result' in response) return 'ok';
  const reason = refusalReason(response);
  return reason !== undefined && TRANSIENT_REASONS.has(reason) ? 'retry' : 'denied';
}

interface Pending {
  callId: string;
  tool: string;
  args: Record<string, unknown>;
  token: string;
  frame: string;
  backoff: number;
  attempt: number;
  retries: number;
}

export class SimAgent implements SimNode {
  readonly kind = 'session' as const;
  up = true;
  epoch = 0;
  session: Session | null = null;
  private readonly pending = new Map<string, Pending>();
  /** Times at which this agent's own ratchet key changed (a DH ratchet step). */
  readonly ratchetSteps: number[] = [];
  /** Frame hashes this agent opened, with when (for the forward-secrecy check). */
  readonly opened: { frame: string; at: number }[] = [];

  constructor(
    private readonly world: World,
    private readonly truth: Truth,
    readonly name: string,
    readonly identity: LocalIdentity,
    readonly gateway: string,
    private readonly offer: Offer,
    readonly rng: Rng,
  ) {
    world.scanner.key(identity.sig.secretKey, `${name} signing key`);
    world.scanner.key(identity.dh.secretKey, `${name} dh key`);
    world.network.attach(name, (p) => this.receive(p));
  }

  /** Starts one tool call; `token` is the compact capability it presents. */
  call(tool: string, args: Record<string, unknown>, token: string): string {
    const callId = `${this.name}:c${this.rng.hex(4)}`;
    this.truth.issue({ callId, agent: this.name, agentDid: this.identity.did, tokenId: this.truth.tokenIds.get(token), tool, args, issuedAt: this.world.scheduler.now });
    const p: Pending = { callId, tool, args, token, frame: '', backoff: RETRANSMIT_MS, attempt: 0, retries: 0 };
    this.pending.set(callId, p);
    this.attempt(p);
    return callId;
  }

  private attempt(p: Pending): void {
    const canary = `cnry-${this.rng.hex(8)}`;
    this.world.scanner.canary(canary);
    // An MCP tools/call; the capability rides in _meta, inside the encrypted payload.
    const req: RpcRequest = {
      jsonrpc: '2.0',
      id: attemptId(p.callId, p.attempt + 1),
      method: 'tools/call',
      params: withCapability({ name: p.tool, arguments: { ...p.args, note: canary } }, p.token),
    };
    p.frame = this.seal(utf8(JSON.stringify(req)));
    p.attempt++;
    p.backoff = RETRANSMIT_MS;
    this.transmit(p, p.attempt);
  }

  private seal(plaintext: Uint8Array): string {
    if (!this.session) this.session = initiateSession(this.world.crypto, this.identity, this.offer, this.world.clock(this.name));
    const before = this.session.ratchet.dhsPublic;
    const sealed = sealMessage(this.world.crypto, this.session, plaintext);
    this.session = sealed.session;
    this.noteKeys(before);
    return encodeEnvelope(sealed.envelope);
  }

  private noteKeys(beforeDhs: Uint8Array): void {
    const r = this.session!.ratchet;
    if (r.dhsPublic !== beforeDhs) this.ratchetSteps.push(this.world.scheduler.now);
    noteRatchetKeys(this.world.scanner, this.name, r);
  }

  private transmit(p: Pending, attempt: number): void {
    if (!this.pending.has(p.callId) || p.attempt !== attempt) return;
    this.world.network.send(this.name, this.gateway, 'session.frame', p.frame);
    const wait = p.backoff;
    p.backoff = Math.min(MAX_RETRANSMIT_MS, p.backoff * 2);
    this.world.scheduler.after(wait, 'agent retransmit', () => this.transmit(p, attempt));
  }

  private receive(packet: Packet): void {
    if (!this.session) return;
    let plaintext: Uint8Array;
    try {
      const env = decodeEnvelope(packet.payload);
      const before = this.session.ratchet.dhsPublic;
      const opened = openMessage(this.world.crypto, this.session, env, this.world.clock(this.name));
      this.session = opened.session;
      this.noteKeys(before);
      plaintext = opened.plaintext;
    } catch (err) {
      if (err instanceof TalosError) return; // forged, replayed or duplicated: dropped, state unchanged
      throw err;
    }
    this.opened.push({ frame: packet.payload, at: this.world.scheduler.now });
    const reply = JSON.parse(fromUtf8(plaintext)) as RpcResponse;
    const replyId = String(reply.id);
    this.truth.deliver(this.name, replyId);
    const callId = callIdOfAttempt(replyId);
    const p = this.pending.get(callId);
    if (!p || replyId !== attemptId(callId, p.attempt)) return; // an answer to an attempt already superseded
    const status = classify(reply);
    if (status === 'retry') {
      p.attempt++; // stops the retransmission of the old frame
      const attempt = p.attempt;
      const wait = retryWait(reply, p.retries++);
      this.world.scheduler.after(wait, 'agent retry', () => {
        if (this.pending.get(p.callId) === p && p.attempt === attempt) this.attempt(p);
      });
      return;
    }
    this.pending.delete(callId);
    this.truth.settle(callId, status, refusalReason(reply));
  }

  get inFlight(): number {
    return this.pending.size;
  }

  crash(): void {}
  restart(): void {}
}
