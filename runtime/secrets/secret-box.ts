import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { concatBytes, fromUtf8, utf8 } from '../encoding/bytes.ts';
import { jcsBytes } from '../encoding/jcs.ts';
import { CryptoError, EncodingError, SchemaError } from '../errors.ts';
import { validate } from '../../contracts/validate.ts';
import { SecretsError } from './errors.ts';
import { KEK_ID_PATTERN, type Keyring } from './keyring.ts';

/**
 * Envelope encryption of one stored secret (contracts/SPEC.md section 10, "Secrets at rest").
 * Each record gets its own random 32-byte data key (DEK); the plaintext is sealed under the DEK
 * and the DEK is sealed (wrapped) under a key-encryption key (KEK) from the keyring, both with
 * XChaCha20-Poly1305 and a random 24-byte nonce. Both seals carry associated data naming the
 * record (purpose, id), and the DEK seal also the KEK id, so a ciphertext moved to another
 * record, or relabelled with another KEK id, fails to open.
 */
export interface WrappedSecret {
  v: 1;
  /** Id of the KEK that wraps the DEK. */
  kek: string;
  /** base64url(nonce 24 || XChaCha20-Poly1305(KEK, nonce, DEK, wrapAad)). */
  dek: string;
  /** base64url(nonce 24 || XChaCha20-Poly1305(DEK, nonce, plaintext, dataAad)). */
  ct: string;
}

/** Names a record: `purpose` says what kind of secret it is, `id` which one. */
export interface SecretRef {
  purpose: string;
  id: string;
}

export const WRAPPED_VERSION = 1;
export const DEK_BYTES = 32;
export const NONCE_BYTES = 24;
export const TAG_BYTES = 16;
const WRAPPED_DEK_BYTES = NONCE_BYTES + DEK_BYTES + TAG_BYTES;
/** Largest plaintext a record holds (a session state with its full skipped-key store fits easily). */
export const MAX_SECRET_BYTES = 4 * 1024 * 1024;
export const PURPOSE_PATTERN = /^[a-z0-9][a-z0-9._/-]{0,63}$/;
export const MAX_RECORD_ID_LENGTH = 512;

const DATA_DOMAIN = utf8('talos/v1/secret-data');
const DEK_DOMAIN = utf8('talos/v1/secret-dek');
const ZERO = new Uint8Array([0]);

export function checkRef(ref: SecretRef): void {
  if (typeof ref.purpose !== 'string' || !PURPOSE_PATTERN.test(ref.purpose)) {
    throw new SecretsError('secret_bad_record', 'purpose must match ' + PURPOSE_PATTERN.source);
  }
  if (typeof ref.id !== 'string' || ref.id.length === 0 || ref.id.length > MAX_RECORD_ID_LENGTH) {
    throw new SecretsError('secret_bad_record', `record id must be 1..${MAX_RECORD_ID_LENGTH} characters`);
  }
}

const dataAad = (ref: SecretRef) => concatBytes(DATA_DOMAIN, ZERO, jcsBytes({ id: ref.id, purpose: ref.purpose }));
const dekAad = (ref: SecretRef, kek: string) =>
  concatBytes(DEK_DOMAIN, ZERO, jcsBytes({ id: ref.id, kek, purpose: ref.purpose }));

/** Shape check of a wrapped secret taken from storage (contracts/schemas/wrapped-secret.schema.json). */
export function checkWrapped(value: unknown): WrappedSecret {
  try {
    return validate('wrapped-secret', value);
  } catch (err) {
    if (err instanceof SchemaError) throw new SecretsError('secret_malformed', err.message);
    throw err;
  }
}

/**
 * Compact byte form of a wrapped secret, for places that hold bytes (key files, blobs):
 * version (1) || kek id length (1) || kek id (ASCII) || wrapped DEK (72) || data ciphertext.
 */
export function wrappedToBytes(w: WrappedSecret): Uint8Array {
  const kek = utf8(w.kek);
  return concatBytes(new Uint8Array([WRAPPED_VERSION, kek.length]), kek, decodeField(w.dek, WRAPPED_DEK_BYTES), decodeField(w.ct));
}

export function wrappedFromBytes(bytes: Uint8Array): WrappedSecret {
  if (bytes.length < 2 || bytes[0] !== WRAPPED_VERSION) throw new SecretsError('secret_malformed', 'unsupported wrapped secret version');
  const idLength = bytes[1]!;
  const dekStart = 2 + idLength;
  const ctStart = dekStart + WRAPPED_DEK_BYTES;
  if (bytes.length < ctStart + NONCE_BYTES + TAG_BYTES) throw new SecretsError('secret_malformed', 'wrapped secret is truncated');
  let kek: string;
  try {
    kek = fromUtf8(bytes.subarray(2, dekStart));
  } catch (err) {
    if (err instanceof EncodingError) throw new SecretsError('secret_malformed', 'the KEK id is not UTF-8');
    throw err;
  }
  if (!KEK_ID_PATTERN.test(kek)) throw new SecretsError('secret_malformed', 'bad KEK id');
  return { v: 1, kek, dek: toB64u(bytes.subarray(dekStart, ctStart)), ct: toB64u(bytes.subarray(ctStart)) };
}

/** base64url field of a wrapped secret; a non-canonical encoding is a malformed record. */
function decodeField(text: string, length?: number): Uint8Array {
  try {
    return fromB64u(text, length);
  } catch (err) {
    if (err instanceof EncodingError) throw new SecretsError('secret_malformed', 'wrapped secret field is not canonical base64url');
    throw err;
  }
}

function openOrRefuse(fn: () => Uint8Array, what: string): Uint8Array {
  try {
    return fn();
  } catch (err) {
    if (err instanceof CryptoError) throw new SecretsError('secret_auth_failed', `${what} did not authenticate`);
    throw err;
  }
}

/** Seals, opens and re-wraps records with the keys on a keyring. Pure: no storage. */
export class SecretBox {
  constructor(
    readonly crypto: CryptoProvider,
    readonly keyring: Keyring,
  ) {}

  seal(ref: SecretRef, plaintext: Uint8Array): WrappedSecret {
    checkRef(ref);
    if (plaintext.length > MAX_SECRET_BYTES) throw new SecretsError('secret_too_large', `a secret holds at most ${MAX_SECRET_BYTES} bytes`);
    const kek = this.keyring.primaryId;
    const kekKey = this.keyring.key(kek);
    const dek = this.crypto.randomBytes(DEK_BYTES);
    try {
      const dataNonce = this.crypto.randomBytes(NONCE_BYTES);
      const ct = concatBytes(dataNonce, this.crypto.xchachaSeal(dek, dataNonce, plaintext, dataAad(ref)));
      return { v: 1, kek, dek: toB64u(this.#wrapDek(ref, kek, kekKey, dek)), ct: toB64u(ct) };
    } finally {
      dek.fill(0);
    }
  }

  open(ref: SecretRef, wrapped: WrappedSecret): Uint8Array {
    checkRef(ref);
    const w = checkWrapped(wrapped);
    const dek = this.#unwrapDek(ref, w);
    try {
      const ct = decodeField(w.ct);
      return openOrRefuse(
        () => this.crypto.xchachaOpen(dek, ct.subarray(0, NONCE_BYTES), ct.subarray(NONCE_BYTES), dataAad(ref)),
        'secret',
      );
    } finally {
      dek.fill(0);
    }
  }

  /** True when the record's DEK is not wrapped by the current primary KEK. */
  needsRewrap(wrapped: WrappedSecret): boolean {
    return wrapped.kek !== this.keyring.primaryId;
  }

  /**
   * Re-wraps the record's DEK under the primary KEK. The data ciphertext is untouched (same
   * bytes), so a rotation costs one small seal per record whatever the secret's size.
   */
  rewrap(ref: SecretRef, wrapped: WrappedSecret): WrappedSecret {
    checkRef(ref);
    const w = checkWrapped(wrapped);
    const kek = this.keyring.primaryId;
    if (w.kek === kek) return w;
    const dek = this.#unwrapDek(ref, w);
    try {
      return { v: 1, kek, dek: toB64u(this.#wrapDek(ref, kek, this.keyring.key(kek), dek)), ct: w.ct };
    } finally {
      dek.fill(0);
    }
  }

  #wrapDek(ref: SecretRef, kek: string, kekKey: Uint8Array, dek: Uint8Array): Uint8Array {
    const nonce = this.crypto.randomBytes(NONCE_BYTES);
    return concatBytes(nonce, this.crypto.xchachaSeal(kekKey, nonce, dek, dekAad(ref, kek)));
  }

  #unwrapDek(ref: SecretRef, w: WrappedSecret): Uint8Array {
    const kekKey = this.keyring.key(w.kek);
    const sealed = decodeField(w.dek, WRAPPED_DEK_BYTES);
    return openOrRefuse(
      () => this.crypto.xchachaOpen(kekKey, sealed.subarray(0, NONCE_BYTES), sealed.subarray(NONCE_BYTES), dekAad(ref, w.kek)),
      'data key',
    );
  }
}
