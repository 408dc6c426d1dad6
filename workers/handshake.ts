import type { Identity } from '../runtime/identity/identity.ts';
import { respondHandshake, type HandshakeFields, type HandshakeResult, type ResponderPrekeys } from '../runtime/session/handshake.ts';
import { sessionError, type SessionErrorCode } from '../runtime/session/errors.ts';
import { PoolError, type CryptoPool } from './pool.ts';
import type { HandshakeItem } from './tasks.ts';

/**
 * respondHandshake (runtime/session/handshake.ts) with its arguments minus the provider,
 * run through the worker pool: the same HandshakeResult, the same SessionError refusals.
 * Handshakes arriving in the same event-loop turn share a batch on the threads; a lone one
 * runs inline (INLINE_MAX_ITEMS); when the pool refuses (overloaded, closed) it runs inline
 * on the pool's provider, so no handshake fails because of the pool.
 */
export async function respondHandshakeOnPool(
  pool: CryptoPool,
  self: Identity,
  initiatorDid: string,
  initiatorSigningKey: Uint8Array,
  fields: HandshakeFields,
  prekeys: ResponderPrekeys,
): Promise<HandshakeResult> {
  const item = handshakeItem(self, initiatorDid, initiatorSigningKey, fields, prekeys);
  let outcome;
  try {
    outcome = await pool.submit('respond-handshakes', item, null);
  } catch (err) {
    if (!(err instanceof PoolError)) throw err;
    return respondHandshake(pool.crypto, self, initiatorDid as Identity['did'], initiatorSigningKey, fields, prekeys);
  }
  if (!outcome.ok) throw sessionError(outcome.code as SessionErrorCode, outcome.message);
  return outcome.result;
}

/**
 * The task's item. Every byte array is copied: a view into a received frame would otherwise
 * clone the frame's whole buffer to the worker.
 */
function handshakeItem(self: Identity, initiatorDid: string, initiatorSigningKey: Uint8Array, fields: HandshakeFields, prekeys: ResponderPrekeys): HandshakeItem {
  const f: HandshakeFields = { ik: fields.ik.slice(), ikSig: fields.ikSig.slice(), ek: fields.ek.slice(), spkId: fields.spkId };
  if (fields.opkId !== undefined) f.opkId = fields.opkId;
  if (fields.pqCt !== undefined) f.pqCt = fields.pqCt.slice();
  if (fields.pqId !== undefined) f.pqId = fields.pqId;
  const keys: ResponderPrekeys = { spk: { secretKey: prekeys.spk.secretKey.slice(), publicKey: prekeys.spk.publicKey.slice() } };
  if (prekeys.opk) keys.opk = { secretKey: prekeys.opk.secretKey.slice(), publicKey: prekeys.opk.publicKey.slice() };
  if (prekeys.pqSeed) keys.pqSeed = prekeys.pqSeed.slice();
  return {
    responder: { did: self.did, signingKey: self.sig.publicKey.slice(), dh: { secretKey: self.dh.secretKey.slice(), publicKey: self.dh.publicKey.slice() } },
    initiatorDid,
    initiatorSigningKey: initiatorSigningKey.slice(),
    fields: f,
    prekeys: keys,
  };
}
