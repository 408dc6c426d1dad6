import { readFileSync } from 'node:fs';
import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { IdentityError } from '../errors.ts';
import { loadKeyFile, saveKeyFile, type KeyFileCipher } from '../identity/key-file.ts';
import type { AtRestCipher } from '../session/ports.ts';
import { SecretsError } from './errors.ts';
import { wrappedFromBytes, wrappedToBytes, type SecretBox, type SecretRef } from './secret-box.ts';

/**
 * Envelope encryption plugged into the seams other modules leave for secrets at rest:
 * - identity key files (runtime/identity/key-file.ts, KeyFileCipher): protection.alg
 *   `talos-envelope-v1`, the sealed secrets are the byte form of a WrappedSecret;
 * - the session store (runtime/session/ports.ts, AtRestCipher): session states and prekey
 *   secrets, each sealed under its own data key, bound to its context (`session:<sid>`, …).
 * Both also re-wrap (rotation) without re-encrypting the data.
 */
export const KEY_FILE_ALG = 'talos-envelope-v1';
export const KEY_FILE_PURPOSE = 'key-file';
export const SESSION_STORE_PURPOSE = 'session-store';

export interface RewrappingCipher {
  /** The id of the KEK that wraps a sealed blob (to find what a rotation still has to do). */
  kekOf(sealed: Uint8Array): string;
}

/**
 * The key file's header (its associated data) is long and public; the record id is its
 * SHA-256, so a sealed blob opens only in the file it was written for.
 */
function keyFileRef(crypto: CryptoProvider, aad: Uint8Array): SecretRef {
  return { purpose: KEY_FILE_PURPOSE, id: toB64u(crypto.sha256(aad)) };
}

export function keyFileCipher(box: SecretBox): KeyFileCipher & RewrappingCipher {
  return {
    alg: KEY_FILE_ALG,
    seal: (plaintext, aad) => ({ sealed: wrappedToBytes(box.seal(keyFileRef(box.crypto, aad), plaintext)) }),
    open: (sealed, aad, params) => {
      if (params !== undefined && Object.keys(params).length > 0) {
        throw new SecretsError('secret_malformed', `${KEY_FILE_ALG} takes no parameters`);
      }
      return box.open(keyFileRef(box.crypto, aad), wrappedFromBytes(sealed));
    },
    kekOf: (sealed) => wrappedFromBytes(sealed).kek,
  };
}

/**
 * Re-seals a key file under the primary KEK (load with the ring that still holds the old KEK,
 * save atomically with the same creation time). Returns false when it already was, or when the
 * file is in plaintext (protection 'none': nothing to re-seal). Any other failure is an error:
 * a key file that does not open must stop the rotation before its KEK is retired.
 */
export function rotateKeyFile(crypto: CryptoProvider, path: string, box: SecretBox): boolean {
  const cipher = keyFileCipher(box);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new IdentityError('key_file_io', `could not read the key file: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  }
  let file: { created?: unknown; secrets?: unknown; protection?: { alg?: unknown } };
  try {
    file = JSON.parse(text) as typeof file;
  } catch (err) {
    throw new IdentityError('key_file_malformed', 'the key file is not JSON', { cause: err });
  }
  if (file?.protection?.alg === 'none') return false;
  if (typeof file.secrets === 'string' && cipher.kekOf(fromB64u(file.secrets)) === box.keyring.primaryId) return false;
  const identity = loadKeyFile(crypto, path, { cipher }); // checks the whole file
  saveKeyFile(path, identity, { created: file.created as number, cipher });
  return true;
}

export function atRestCipher(box: SecretBox, purpose = SESSION_STORE_PURPOSE): AtRestCipher & RewrappingCipher & {
  /** The same blob with its data key re-wrapped under the primary KEK (data untouched). */
  rewrap(sealed: Uint8Array, context: string): Uint8Array;
} {
  const ref = (context: string): SecretRef => ({ purpose, id: context });
  return {
    seal: (plain, context) => wrappedToBytes(box.seal(ref(context), plain)),
    open: (sealed, context) => box.open(ref(context), wrappedFromBytes(sealed)),
    rewrap: (sealed, context) => wrappedToBytes(box.rewrap(ref(context), wrappedFromBytes(sealed))),
    kekOf: (sealed) => wrappedFromBytes(sealed).kek,
  };
}
