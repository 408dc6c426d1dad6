import type { CryptoProvider } from '../crypto/provider.ts';
import { sessionError } from './errors.ts';
import type { Envelope } from './envelope.ts';
import type { Did } from '../identity/did.ts';
import { respondHandshake, type HandshakeFields, type HandshakeResult, type LocalIdentity, type ResponderPrekeys } from './handshake.ts';
import type { HandshakeStore } from './ports.ts';
import { completeAccept, handshakeInputs, type Accepted } from './session.ts';

/** respondHandshake without its provider argument: where the responder's key agreement runs (inline, or a worker pool). */
export type KeyAgreement = (self: LocalIdentity, initiatorDid: Did, initiatorKey: Uint8Array, fields: HandshakeFields, prekeys: ResponderPrekeys) => Promise<HandshakeResult>;

/**
 * The responder's whole first-message step against its prekey store: look up the secrets the
 * frame names, derive and decrypt (pure), then commit the consumed prekeys, the EK and the new
 * session in one transaction. Only after this returns may a reply be produced. `agree` moves
 * the key agreement elsewhere (the gateway's worker pool); every check stays here, in order.
 */
export async function acceptFirstMessage(
  crypto: CryptoProvider,
  self: LocalIdentity,
  envelope: Envelope,
  prekeys: HandshakeStore,
  now: number,
  agree?: KeyAgreement,
): Promise<Accepted> {
  if (envelope.type !== 'prekey' || !envelope.handshake) {
    throw sessionError('unknown_session', 'no session for this frame and it is not a first message');
  }
  const lookup = await prekeys.lookup(envelope.handshake);
  const { initiatorKey, prekeys: secrets } = handshakeInputs(self, envelope, lookup);
  const from = envelope.from as Did;
  const hs = agree ? await agree(self, from, initiatorKey, envelope.handshake, secrets) : respondHandshake(crypto, self, from, initiatorKey, envelope.handshake, secrets);
  const accepted = completeAccept(crypto, self, envelope, lookup, hs, now);
  await prekeys.commitHandshake(accepted.consumed, accepted.session);
  return accepted;
}
