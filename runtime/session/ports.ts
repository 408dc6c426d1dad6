import type { MlKemPrekeySecret, SignedPrekeySecrets, X25519PrekeySecret } from '../identity/prekeys.ts';
import type { HandshakeFields } from './handshake.ts';
import type { Consumed, ResponderLookup, Session } from './session.ts';

/**
 * The session layer's storage ports. Adapters: runtime/store/session-sqlite.ts (embedded
 * default). Every write is one transaction: a store never holds a session half-updated.
 */
export interface SessionStore {
  load(sid: Uint8Array): Promise<Session | undefined>;
  /** Replaces the stored session atomically (insert or update). */
  save(session: Session): Promise<void>;
  delete(sid: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/**
 * The responder's side of handshakes: its prekey secrets and its replay cache of first-message
 * EKs (per signed prekey). (runtime/identity's PrekeyStore is the in-memory holder of secrets;
 * this port adds the EK cache and the one-transaction commit with the session.)
 */
export interface HandshakeStore {
  lookup(fields: HandshakeFields): Promise<ResponderLookup>;
  /**
   * In ONE transaction: refuses (SessionError) if the EK was recorded meanwhile or a named
   * one-time prekey is gone; else deletes the used one-time prekeys, records the EK under the
   * signed prekey id, and saves the new session. Called before any reply is produced.
   */
  commitHandshake(consumed: Consumed, session: Session): Promise<void>;
}

/**
 * Storing the responder's own prekey secrets, as runtime/identity creates them. ML-KEM ids
 * (last-resort and one-time) share one id space: a colliding id is refused.
 */
export interface PrekeySecretsWriter {
  /** The signed prekey and, when present, its last-resort pqspk (which makes PQXDH mandatory). */
  putSignedPrekey(secrets: SignedPrekeySecrets): Promise<void>;
  putOneTimePrekeys(secrets: readonly X25519PrekeySecret[]): Promise<void>;
  putPqOneTimePrekeys(secrets: readonly MlKemPrekeySecret[]): Promise<void>;
  /** Retires a signed prekey: its secret, its pqspk and its recorded EKs go together. */
  deleteSignedPrekey(id: number): Promise<void>;
  /** Retires the `count` one-time prekeys with the lowest ids (the oldest). */
  deleteOldestOneTimePrekeys(count: number): Promise<void>;
}

/**
 * The seam for encryption at rest: every secret blob a store writes goes through `seal` and
 * comes back through `open`; `context` names the row (so a blob cannot be moved to another row
 * once real keys are used). The governance issue supplies a real cipher; the default passes
 * bytes through unchanged.
 */
export interface AtRestCipher {
  seal(plain: Uint8Array, context: string): Uint8Array;
  open(sealed: Uint8Array, context: string): Uint8Array;
}

export const noAtRestCipher: AtRestCipher = {
  seal: (plain) => plain,
  open: (sealed) => sealed,
};
