import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { parseJson } from '../encoding/json.ts';
import { TalosError } from '../errors.ts';
import { normalizeDid } from '../identity/did.ts';
import { sessionError } from './errors.ts';
import type { HandshakeFields } from './handshake.ts';
import { MAX_STORED_SKIPPED } from './limits.ts';
import type { RatchetState, SkippedKey } from './ratchet.ts';
import type { Session } from './session.ts';

/**
 * Lossless JSON form of a Session, for stores (bytes as base64url). This is secret material:
 * stores pass it through their at-rest cipher seam before writing it.
 * decodeSession(encodeSession(s)) deep-equals s; decoding checks every length and refuses
 * anything else with SessionError('state_corrupt').
 */
export const SESSION_STATE_VERSION = 1;

const b = (x: Uint8Array) => toB64u(x);
const bn = (x: Uint8Array | null) => (x === null ? null : toB64u(x));

export function sessionToJson(s: Session): unknown {
  const r = s.ratchet;
  let handshake: Record<string, unknown> | null = null;
  if (s.handshake) {
    const h = s.handshake;
    handshake = { ik: b(h.ik), ik_sig: b(h.ikSig), ek: b(h.ek), spk_id: h.spkId };
    if (h.opkId !== undefined) handshake.opk_id = h.opkId;
    if (h.pqCt !== undefined) handshake.pq_ct = b(h.pqCt);
    if (h.pqId !== undefined) handshake.pq_id = h.pqId;
  }
  return {
    v: SESSION_STATE_VERSION,
    sid: b(s.sid),
    role: s.role,
    mode: s.mode,
    self: s.self,
    peer: s.peer,
    handshake,
    closed: s.closed,
    ratchet: {
      ad: b(r.ad),
      rk: b(r.rk),
      dhs_sk: b(r.dhsSecret),
      dhs_pk: b(r.dhsPublic),
      dhr: bn(r.dhr),
      cks: bn(r.cks),
      ckr: bn(r.ckr),
      ns: r.ns,
      nr: r.nr,
      pn: r.pn,
      skipped: r.skipped.map((k) => [b(k.dh), k.n, b(k.mk), k.ts]),
    },
  };
}

export function encodeSession(s: Session): string {
  return JSON.stringify(sessionToJson(s));
}

type J = Record<string, unknown>;
const u32 = (x: unknown): number => {
  if (!Number.isInteger(x) || (x as number) < 0 || (x as number) > 0xffffffff) throw new Error('not a u32');
  return x as number;
};
const key = (x: unknown, len: number) => fromB64u(x as string, len);
const keyOrNull = (x: unknown, len: number) => (x === null ? null : key(x, len));

export function decodeSession(text: string): Session {
  try {
    const o = parseJson(text) as unknown as J;
    if (o.v !== SESSION_STATE_VERSION) throw new Error('unknown state version');
    if (o.role !== 'initiator' && o.role !== 'responder') throw new Error('bad role');
    if (o.mode !== 'x3dh' && o.mode !== 'pqxdh') throw new Error('bad mode');
    if (typeof o.closed !== 'boolean') throw new Error('bad closed flag');
    const r = o.ratchet as J;
    const skippedIn = r.skipped as unknown[];
    if (!Array.isArray(skippedIn) || skippedIn.length > MAX_STORED_SKIPPED) throw new Error('bad skipped list');
    const skipped: SkippedKey[] = skippedIn.map((e) => {
      const [dh, n, mk, ts] = e as unknown[];
      if (!Array.isArray(e) || e.length !== 4 || !Number.isSafeInteger(ts)) throw new Error('bad skipped key');
      return { dh: key(dh, 32), n: u32(n), mk: key(mk, 32), ts: ts as number };
    });
    const ratchet: RatchetState = {
      ad: key(r.ad, 128),
      rk: key(r.rk, 32),
      dhsSecret: key(r.dhs_sk, 32),
      dhsPublic: key(r.dhs_pk, 32),
      dhr: keyOrNull(r.dhr, 32),
      cks: keyOrNull(r.cks, 32),
      ckr: keyOrNull(r.ckr, 32),
      ns: u32(r.ns),
      nr: u32(r.nr),
      pn: u32(r.pn),
      skipped,
    };
    let handshake: HandshakeFields | null = null;
    if (o.handshake !== null) {
      const h = o.handshake as J;
      handshake = { ik: key(h.ik, 32), ikSig: key(h.ik_sig, 64), ek: key(h.ek, 32), spkId: u32(h.spk_id) };
      if (h.opk_id !== undefined) handshake.opkId = u32(h.opk_id);
      if (h.pq_ct !== undefined) handshake.pqCt = key(h.pq_ct, 1088);
      if (h.pq_id !== undefined) handshake.pqId = u32(h.pq_id);
    }
    return {
      v: 1,
      sid: key(o.sid, 16),
      role: o.role,
      mode: o.mode,
      self: normalizeDid(o.self as string),
      peer: normalizeDid(o.peer as string),
      ratchet,
      handshake,
      closed: o.closed,
    };
  } catch (err) {
    if (err instanceof TalosError && err.code === 'state_corrupt') throw err;
    throw sessionError('state_corrupt', 'stored session state is malformed', err);
  }
}
