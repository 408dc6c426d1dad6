import type { CryptoProvider, KeyPair } from '../crypto/provider.ts';
import { CryptoError } from '../errors.ts';
import type { Identity } from '../identity/identity.ts';
import type { Did } from '../identity/did.ts';
import { signIdentityCert, verifyIdentityCert } from './identity-cert.ts';
import { sessionError } from './errors.ts';
import { INFO_PQXDH, INFO_SESSION_ID, INFO_X3DH, ZERO_SALT } from './kdf.ts';
import { requireCanonicalX25519 } from './keys.ts';
import type { PeerPrekeys } from './bundle.ts';

/**
 * X3DH and PQXDH (PROTOCOL.md section 5), both sides, as pure functions.
 *   IKM = 0xFF*32 || DH1 || DH2 || DH3 [|| DH4] [|| SS]
 *   SK  = HKDF(0^32, IKM, info, 32); sid = HKDF(0^32, SK, "Talos_SessionId", 16)
 *   AD  = IKsig_A || IKdh_A || IKsig_B || IKdh_B
 */

export const PQ_CIPHERTEXT_BYTES = 1088;
const F = new Uint8Array(32).fill(0xff);

/** An agent's long-term keys (runtime/identity): IKsig, which its DID names, and IKdh. */
export type LocalIdentity = Identity;

export type HandshakeMode = 'x3dh' | 'pqxdh';

/** What the first message(s) carry so the responder can derive the same SK. */
export interface HandshakeFields {
  ik: Uint8Array; // IKdh_A (IKsig_A is named by the sender's DID)
  ikSig: Uint8Array; // IKsig_A's certificate of IKdh_A (identity-cert.ts)
  ek: Uint8Array;
  spkId: number;
  opkId?: number;
  pqCt?: Uint8Array;
  pqId?: number;
}

export interface HandshakeResult {
  mode: HandshakeMode;
  sk: Uint8Array;
  ad: Uint8Array;
  sid: Uint8Array;
}

function dh(crypto: CryptoProvider, secret: Uint8Array, pub: Uint8Array): Uint8Array {
  try {
    return crypto.x25519(secret, pub);
  } catch (err) {
    if (err instanceof CryptoError) throw sessionError('bad_public_key', 'handshake key gives a low-order result', err);
    throw err;
  }
}

function derive(
  crypto: CryptoProvider,
  parts: Uint8Array[],
  pq: boolean,
  ad: Uint8Array,
): HandshakeResult {
  let length = 32;
  for (const p of parts) length += p.length;
  const ikm = new Uint8Array(length);
  ikm.set(F, 0);
  let off = 32;
  for (const p of parts) {
    ikm.set(p, off);
    off += p.length;
  }
  const sk = crypto.hkdfSha256(ikm, ZERO_SALT, pq ? INFO_PQXDH : INFO_X3DH, 32);
  const sid = crypto.hkdfSha256(sk, ZERO_SALT, INFO_SESSION_ID, 16);
  return { mode: pq ? 'pqxdh' : 'x3dh', sk, ad, sid };
}

export function associatedData(
  initiatorSig: Uint8Array,
  initiatorDh: Uint8Array,
  responderSig: Uint8Array,
  responderDh: Uint8Array,
): Uint8Array {
  const ad = new Uint8Array(128);
  ad.set(initiatorSig, 0);
  ad.set(initiatorDh, 32);
  ad.set(responderSig, 64);
  ad.set(responderDh, 96);
  return ad;
}

/** Initiator side: a fresh EK against the responder's checked prekeys. */
export function initiateHandshake(
  crypto: CryptoProvider,
  self: LocalIdentity,
  peer: PeerPrekeys,
): HandshakeResult & { fields: HandshakeFields } {
  const ek = crypto.x25519KeyPair();
  const parts = [
    dh(crypto, self.dh.secretKey, peer.spk.pub),
    dh(crypto, ek.secretKey, peer.ikDh),
    dh(crypto, ek.secretKey, peer.spk.pub),
  ];
  const fields: HandshakeFields = {
    ik: self.dh.publicKey,
    ikSig: signIdentityCert(crypto, self),
    ek: ek.publicKey,
    spkId: peer.spk.id,
  };
  if (peer.opk) {
    parts.push(dh(crypto, ek.secretKey, peer.opk.pub));
    fields.opkId = peer.opk.id;
  }
  if (peer.pq) {
    let enc;
    try {
      enc = crypto.mlkemEncapsulate(peer.pq.pub, crypto.randomBytes(32));
    } catch (err) {
      if (err instanceof CryptoError) throw sessionError('bad_pq_prekey', 'ML-KEM public key refused', err);
      throw err;
    }
    parts.push(enc.sharedSecret);
    fields.pqCt = enc.cipherText;
    fields.pqId = peer.pq.id;
  }
  const ad = associatedData(self.sig.publicKey, self.dh.publicKey, peer.signingKey, peer.ikDh);
  return { ...derive(crypto, parts, peer.pq !== undefined, ad), fields };
}

/** The responder's secrets named by the first message (looked up by the caller). */
export interface ResponderPrekeys {
  spk: KeyPair;
  opk?: KeyPair;
  pqSeed?: Uint8Array;
}

/** Responder side: the same SK from the fields of a first message. */
export function respondHandshake(
  crypto: CryptoProvider,
  self: LocalIdentity,
  initiatorDid: Did,
  initiatorSigningKey: Uint8Array,
  fields: HandshakeFields,
  prekeys: ResponderPrekeys,
): HandshakeResult {
  requireCanonicalX25519(fields.ik, 'initiator identity key');
  if (!verifyIdentityCert(crypto, initiatorDid, initiatorSigningKey, fields.ik, fields.ikSig)) {
    throw sessionError('bad_identity', "the initiator's X25519 identity key is not certified by its DID");
  }
  requireCanonicalX25519(fields.ek, 'ephemeral key');
  const parts = [
    dh(crypto, prekeys.spk.secretKey, fields.ik),
    dh(crypto, self.dh.secretKey, fields.ek),
    dh(crypto, prekeys.spk.secretKey, fields.ek),
  ];
  if (prekeys.opk) parts.push(dh(crypto, prekeys.opk.secretKey, fields.ek));
  const pq = fields.pqCt !== undefined;
  if (pq) {
    if (!prekeys.pqSeed) throw sessionError('unknown_prekey', 'no ML-KEM prekey for this message');
    let ss: Uint8Array;
    try {
      ss = crypto.mlkemDecapsulate(fields.pqCt!, prekeys.pqSeed);
    } catch (err) {
      if (err instanceof CryptoError) throw sessionError('frame_malformed', 'ML-KEM ciphertext refused', err);
      throw err;
    }
    parts.push(ss);
  }
  const ad = associatedData(initiatorSigningKey, fields.ik, self.sig.publicKey, self.dh.publicKey);
  return derive(crypto, parts, pq, ad);
}
