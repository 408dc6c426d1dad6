import type { CryptoProvider } from '../crypto/provider.ts';
import { sessionError } from './errors.ts';
import type { Envelope } from './envelope.ts';
import type { LocalIdentity } from './handshake.ts';
import type { HandshakeStore } from './ports.ts';
import { acceptSession, type Accepted } from './session.ts';

/**
 * The responder's whole first-message step against its prekey store: look up the secrets the
 * frame names, derive and decrypt (pure), then commit the consumed prekeys, the EK and the new
 * session in one transaction. Only after this returns may a reply be produced.
 */
export async function acceptFirstMessage(
  crypto: CryptoProvider,
  self: LocalIdentity,
  envelope: Envelope,
  prekeys: HandshakeStore,
  now: number,
): Promise<Accepted> {
  if (envelope.type !== 'prekey' || !envelope.handshake) {
    throw sessionError('unknown_session', 'no session for this frame and it is not a first message');
  }
  const lookup = await prekeys.lookup(envelope.handshake);
  const accepted = acceptSession(crypto, self, envelope, lookup, now);
  await prekeys.commitHandshake(accepted.consumed, accepted.session);
  return accepted;
}
