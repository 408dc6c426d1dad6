/** The session layer's public surface (contracts/SPEC.md section 5). */
export { SessionError, type SessionErrorCode } from './errors.ts';
export * from './limits.ts';
export type { LocalIdentity, HandshakeFields, HandshakeMode } from './handshake.ts';
export type { PrekeyBundleJson, OneTimePrekeyJson, PqOneTimePrekeyJson } from './bundle.ts';
export { encodeEnvelope, decodeEnvelope, type Envelope, type EnvelopeType } from './envelope.ts';
export {
  initiateSession,
  sealMessage,
  sealClose,
  openMessage,
  acceptSession,
  type Session,
  type Offer,
  type Sealed,
  type Opened,
  type Accepted,
  type Consumed,
  type ResponderLookup,
} from './session.ts';
export { acceptFirstMessage } from './responder.ts';
export { encodeSession, decodeSession } from './state-codec.ts';
export { noAtRestCipher, type AtRestCipher, type SessionStore, type HandshakeStore, type PrekeySecretsWriter } from './ports.ts';
