import type { CryptoProvider, KeyPair } from '../crypto/provider.ts';
import { bytesEqual, fromUtf8, utf8 } from '../encoding/bytes.ts';
import { TalosError } from '../errors.ts';
import { publicKeyFromDid, type Did } from '../identity/did.ts';
import { checkPeerPrekeys, type OneTimePrekeyJson, type PqOneTimePrekeyJson, type PrekeyBundleJson } from './bundle.ts';
import { sessionError } from './errors.ts';
import type { Envelope } from './envelope.ts';
import {
  initiateHandshake,
  respondHandshake,
  type HandshakeFields,
  type HandshakeMode,
  type HandshakeResult,
  type LocalIdentity,
  type ResponderPrekeys,
} from './handshake.ts';
import { MAX_CLOSE_REASON_BYTES } from './limits.ts';
import { decrypt, encrypt, initInitiator, initResponder, type RatchetState } from './ratchet.ts';

/**
 * A session: the ratchet plus who is talking to whom. Plain immutable data (state-codec.ts
 * serializes it losslessly); every function returns a new Session and leaves its input as it
 * was, so "commit" is simply keeping (and storing) the returned value.
 */
export interface Session {
  readonly v: 1;
  readonly sid: Uint8Array;
  readonly role: 'initiator' | 'responder';
  readonly mode: HandshakeMode;
  readonly self: Did;
  readonly peer: Did;
  readonly ratchet: RatchetState;
  /** Initiator only: carried on every frame until the first reply arrives. */
  readonly handshake: HandshakeFields | null;
  readonly closed: boolean;
}

export interface Offer {
  bundle: PrekeyBundleJson;
  opk?: OneTimePrekeyJson;
  pqOpk?: PqOneTimePrekeyJson;
}

/** Initiator: checks the responder's bundle and derives a session that can send at once. */
export function initiateSession(crypto: CryptoProvider, self: LocalIdentity, offer: Offer, now: number): Session {
  const offered: { opk?: OneTimePrekeyJson; pqOpk?: PqOneTimePrekeyJson } = {};
  if (offer.opk) offered.opk = offer.opk;
  if (offer.pqOpk) offered.pqOpk = offer.pqOpk;
  const peer = checkPeerPrekeys(crypto, offer.bundle, offered, now);
  const hs = initiateHandshake(crypto, self, peer);
  return {
    v: 1,
    sid: hs.sid,
    role: 'initiator',
    mode: hs.mode,
    self: self.did,
    peer: peer.did,
    ratchet: initInitiator(crypto, hs.sk, hs.ad, peer.spk.pub),
    handshake: hs.fields,
    closed: false,
  };
}

export interface Sealed {
  session: Session;
  envelope: Envelope;
}

/** Encrypts one message; the frame is `prekey` until the initiator has heard back. */
export function sealMessage(crypto: CryptoProvider, session: Session, plaintext: Uint8Array): Sealed {
  if (session.closed) throw sessionError('session_closed', 'the session is closed');
  const out = encrypt(crypto, session.ratchet, plaintext);
  const envelope: Envelope = {
    type: session.handshake ? 'prekey' : 'msg',
    from: session.self,
    to: session.peer,
    sid: session.sid,
    header: out.header,
    ct: out.ciphertext,
  };
  if (session.handshake) envelope.handshake = session.handshake;
  return { session: { ...session, ratchet: out.state }, envelope };
}

/** Encrypts a close frame (its plaintext is the reason code); the returned session is closed. */
export function sealClose(crypto: CryptoProvider, session: Session, reason: string): Sealed {
  const bytes = utf8(reason);
  if (bytes.length > MAX_CLOSE_REASON_BYTES) throw sessionError('plaintext_too_large', 'close reason is too long');
  const { session: next, envelope } = sealMessage(crypto, session, bytes);
  // A close frame never carries the handshake: a responder without the session ignores it.
  const { handshake: _dropped, ...rest } = envelope;
  return { session: { ...next, closed: true }, envelope: { ...rest, type: 'close' } };
}

export interface Opened {
  session: Session;
  plaintext: Uint8Array;
  /** Set when the frame was a close: the peer's reason. */
  closeReason?: string;
}

/** Decrypts a frame of an existing session, transactionally (the input session is untouched). */
export function openMessage(crypto: CryptoProvider, session: Session, envelope: Envelope, now: number): Opened {
  if (session.closed) throw sessionError('session_closed', 'the session is closed');
  if (envelope.to !== session.self) throw sessionError('wrong_recipient', 'frame is addressed to another agent');
  if (envelope.from !== session.peer) throw sessionError('wrong_sender', 'frame comes from another agent');
  if (!bytesEqual(envelope.sid, session.sid)) throw sessionError('sid_mismatch', 'frame belongs to another session');
  if (envelope.type === 'prekey' && session.role === 'initiator') {
    throw sessionError('frame_malformed', 'an initiator never receives a prekey frame');
  }
  const out = decrypt(crypto, session.ratchet, envelope.header, envelope.ct, now);
  let closeReason: string | undefined;
  if (envelope.type === 'close') {
    try {
      closeReason = fromUtf8(out.plaintext);
    } catch {
      closeReason = 'unspecified';
    }
  }
  const next: Session = {
    ...session,
    ratchet: out.state,
    // Any authenticated reply proves the responder has the session: stop sending the handshake.
    handshake: session.role === 'initiator' ? null : session.handshake,
    closed: closeReason !== undefined,
  };
  const opened: Opened = { session: next, plaintext: out.plaintext };
  if (closeReason !== undefined) opened.closeReason = closeReason;
  return opened;
}

/**
 * What the responder's prekey store found for a first message (PrekeyStore.lookup): the
 * secrets it names, whether the published bundle demands PQXDH, and whether its EK was already
 * seen under that signed prekey.
 */
export interface ResponderLookup {
  spk?: KeyPair;
  opk?: KeyPair;
  pq?: { seed: Uint8Array; oneTime: boolean };
  requiresPq: boolean;
  ekSeen: boolean;
}

/** What accepting a first message consumes; committed with the new session in one transaction. */
export interface Consumed {
  spkId: number;
  ek: Uint8Array;
  opkId?: number;
  pqOneTimeId?: number;
}

export interface Accepted {
  session: Session;
  plaintext: Uint8Array;
  consumed: Consumed;
}

/**
 * Responder: derives the session from a first (prekey) frame and decrypts it. Pure: the caller
 * commits `consumed` (delete the one-time prekeys, record the EK) together with the session,
 * BEFORE producing any reply (PrekeyStore.commitHandshake does both in one transaction).
 */
export function acceptSession(
  crypto: CryptoProvider,
  self: LocalIdentity,
  envelope: Envelope,
  lookup: ResponderLookup,
  now: number,
): Accepted {
  const { initiatorKey, prekeys } = handshakeInputs(self, envelope, lookup);
  const hs = respondHandshake(crypto, self, envelope.from, initiatorKey, envelope.handshake!, prekeys);
  return completeAccept(crypto, self, envelope, lookup, hs, now);
}

/**
 * acceptSession's checks before the key agreement, in its refusal order, and the agreement's
 * inputs: the key agreement may then run elsewhere (the worker pool) before completeAccept.
 */
export function handshakeInputs(self: LocalIdentity, envelope: Envelope, lookup: ResponderLookup): { initiatorKey: Uint8Array; prekeys: ResponderPrekeys } {
  const h = envelope.handshake;
  if (envelope.type !== 'prekey' || !h) throw sessionError('unknown_session', 'no session for this frame and it is not a first message');
  if (envelope.to !== self.did) throw sessionError('wrong_recipient', 'frame is addressed to another agent');
  if (!lookup.spk) throw sessionError('unknown_prekey', 'signed prekey id is not ours (or retired)');
  if (h.opkId !== undefined && !lookup.opk) throw sessionError('unknown_prekey', 'one-time prekey unknown or already used');
  if (h.pqId !== undefined && !lookup.pq) throw sessionError('unknown_prekey', 'ML-KEM prekey unknown or already used');
  if (lookup.requiresPq && h.pqCt === undefined) throw sessionError('pq_downgrade', 'our bundle has an ML-KEM key: X3DH refused');
  if (lookup.ekSeen) throw sessionError('handshake_replay', 'this ephemeral key was already used with this signed prekey');
  let initiatorKey: Uint8Array;
  try {
    initiatorKey = publicKeyFromDid(envelope.from);
  } catch (err) {
    if (err instanceof TalosError) throw sessionError('frame_malformed', 'sender DID is not valid', err);
    throw err;
  }
  const prekeys: ResponderPrekeys = { spk: lookup.spk };
  if (lookup.opk) prekeys.opk = lookup.opk;
  if (lookup.pq) prekeys.pqSeed = lookup.pq.seed;
  return { initiatorKey, prekeys };
}

/** acceptSession after the key agreement `hs` (of handshakeInputs' inputs): the session and the first message. */
export function completeAccept(crypto: CryptoProvider, self: LocalIdentity, envelope: Envelope, lookup: ResponderLookup, hs: HandshakeResult, now: number): Accepted {
  const h = envelope.handshake!;
  if (!bytesEqual(hs.sid, envelope.sid)) throw sessionError('sid_mismatch', 'session id does not match the handshake');
  const session: Session = {
    v: 1,
    sid: hs.sid,
    role: 'responder',
    mode: hs.mode,
    self: self.did,
    peer: envelope.from,
    ratchet: initResponder(hs.sk, hs.ad, lookup.spk!),
    handshake: null,
    closed: false,
  };
  const opened = openMessage(crypto, session, envelope, now);
  const consumed: Consumed = { spkId: h.spkId, ek: h.ek };
  if (h.opkId !== undefined) consumed.opkId = h.opkId;
  if (h.pqId !== undefined && lookup.pq?.oneTime) consumed.pqOneTimeId = h.pqId;
  return { session: opened.session, plaintext: opened.plaintext, consumed };
}
