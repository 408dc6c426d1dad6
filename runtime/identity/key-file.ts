import { chmodSync, closeSync, constants, fstatSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { CryptoProvider } from '../crypto/provider.ts';
import type { KeyFile } from '../../contracts/types.gen.ts';
import { validate } from '../../contracts/validate.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { fromUtf8, utf8 } from '../encoding/bytes.ts';
import { jcsBytes } from '../encoding/jcs.ts';
import { parseJson } from '../encoding/json.ts';
import { EncodingError, IdentityError, SchemaError, TalosError } from '../errors.ts';
import { identityFromSecrets, type Identity } from './identity.ts';

/**
 * Identity key files (contracts/SPEC.md section 3): JSON, schema-checked
 * (contracts/schemas/key-file.schema.json), written atomically with mode 0600.
 *
 * Encryption at rest is a seam: a KeyFileCipher. The default, PLAINTEXT_KEY_FILE, stores the
 * secrets in clear (protection.alg 'none'); the governance agent will supply a sealing cipher.
 * A sealing cipher gets the JCS bytes of { ik_sig, ik_dh } and the file's public header (as
 * associated data, so a sealed blob cannot be moved to another file) and returns bytes that
 * are stored base64url in `secrets`.
 */
export type { KeyFile };

export const KEY_FILE_VERSION = 1;
export const KEY_FILE_KIND = 'talos-identity-key-file';
/** Key files are small; refuse anything bigger before parsing it. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;
export const KEY_FILE_MODE = 0o600;

export interface KeyFileCipher {
  /** Written to protection.alg; 'none' is reserved for the plaintext default. */
  readonly alg: string;
  seal(plaintext: Uint8Array, aad: Uint8Array): { sealed: Uint8Array; params?: Record<string, string | number> };
  /** Throws (any TalosError) when the blob does not open: wrong key, tampering. */
  open(sealed: Uint8Array, aad: Uint8Array, params: Record<string, string | number> | undefined): Uint8Array;
}

/** The plaintext default: secrets kept in clear inside the JSON. */
export const PLAINTEXT_KEY_FILE: KeyFileCipher = {
  alg: 'none',
  seal: () => {
    throw new IdentityError('key_file_protection', 'the plaintext key file cipher does not seal');
  },
  open: () => {
    throw new IdentityError('key_file_protection', 'the plaintext key file cipher does not open');
  },
};

function header(file: { did: string; created: number; ik_dh: string }, alg: string): Uint8Array {
  return jcsBytes({ v: KEY_FILE_VERSION, kind: KEY_FILE_KIND, did: file.did, created: file.created, ik_dh: file.ik_dh, alg });
}

/** The key file object for an identity. `created` is integer ms since the epoch. */
export function encodeKeyFile(identity: Identity, options: { created: number; cipher?: KeyFileCipher }): KeyFile {
  const cipher = options.cipher ?? PLAINTEXT_KEY_FILE;
  const base = { did: identity.did, created: options.created, ik_dh: toB64u(identity.dh.publicKey) };
  const clear = { ik_sig: toB64u(identity.sig.secretKey), ik_dh: toB64u(identity.dh.secretKey) };
  let protection: KeyFile['protection'] = { alg: 'none' };
  let secrets: KeyFile['secrets'] = clear;
  if (cipher.alg !== 'none') {
    const { sealed, params } = cipher.seal(jcsBytes(clear), header(base, cipher.alg));
    protection = params ? { alg: cipher.alg, params } : { alg: cipher.alg };
    secrets = toB64u(sealed);
  }
  return validate('key-file', { v: KEY_FILE_VERSION, kind: KEY_FILE_KIND, ...base, protection, secrets });
}

function malformed(message: string, cause?: unknown): IdentityError {
  return new IdentityError('key_file_malformed', message, { cause });
}

/**
 * The identity in a key file object. Refuses (IdentityError): key_file_malformed (schema,
 * encoding), key_file_protection (alg and cipher disagree, or the sealed secrets do not
 * open), identity_key_mismatch (the public keys are not those of the secrets).
 */
export function decodeKeyFile(crypto: CryptoProvider, value: unknown, options: { cipher?: KeyFileCipher } = {}): Identity {
  const cipher = options.cipher ?? PLAINTEXT_KEY_FILE;
  let file: KeyFile;
  try {
    file = validate('key-file', value);
  } catch (err) {
    if (err instanceof SchemaError) throw malformed(err.message, err);
    throw err;
  }
  if (file.protection.alg !== cipher.alg) {
    throw new IdentityError('key_file_protection', `the key file is protected with ${file.protection.alg}, not ${cipher.alg}`);
  }
  let clear: { ik_sig: string; ik_dh: string };
  if (typeof file.secrets === 'string') {
    if (cipher.alg === 'none') throw malformed('sealed secrets in a plaintext key file');
    let opened: Uint8Array;
    try {
      opened = cipher.open(fromB64u(file.secrets), header(file, cipher.alg), file.protection.params as Record<string, string | number> | undefined);
    } catch (err) {
      if (err instanceof TalosError) throw new IdentityError('key_file_protection', 'the key file secrets do not open', { cause: err });
      throw err;
    }
    let parsed: Record<string, unknown>;
    try {
      parsed = parseJson(fromUtf8(opened)) as Record<string, unknown>;
    } catch (err) {
      throw malformed('the opened secrets are not JSON', err);
    }
    if (typeof parsed !== 'object' || parsed === null || typeof parsed.ik_sig !== 'string' || typeof parsed.ik_dh !== 'string' || Object.keys(parsed).length !== 2) {
      throw malformed('the opened secrets are not { ik_sig, ik_dh }');
    }
    clear = { ik_sig: parsed.ik_sig, ik_dh: parsed.ik_dh };
  } else {
    if (cipher.alg !== 'none') throw malformed('clear secrets in a sealed key file');
    clear = file.secrets;
  }
  try {
    return identityFromSecrets(
      crypto,
      { sigSeed: fromB64u(clear.ik_sig, 32), dhSecret: fromB64u(clear.ik_dh, 32) },
      { did: file.did, dhPublicKey: fromB64u(file.ik_dh, 32) },
    );
  } catch (err) {
    if (err instanceof EncodingError) throw malformed('a secret key is not base64url of 32 bytes', err);
    throw err;
  }
}

/**
 * Writes the key file atomically: a temporary file in the same directory (created 0600,
 * exclusive), fsync, then rename over `path`. A failure leaves any previous file untouched.
 */
export function saveKeyFile(path: string, identity: Identity, options: { created: number; cipher?: KeyFileCipher }): void {
  const text = JSON.stringify(encodeKeyFile(identity, options), null, 2) + '\n';
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, 'wx', KEY_FILE_MODE);
    chmodSync(tmp, KEY_FILE_MODE); // the umask cannot widen it, but be explicit
    writeSync(fd, utf8(text));
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already renamed or never created
    }
    throw new IdentityError('key_file_io', `could not write the key file: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  }
}

/**
 * Reads and checks a key file. Also refuses (key_file_permissions) a file that group or others
 * may read or write, as ssh does for private keys.
 */
export function loadKeyFile(crypto: CryptoProvider, path: string, options: { cipher?: KeyFileCipher } = {}): Identity {
  let text: string;
  let fd: number | undefined;
  try {
    // Checked and read through one descriptor (no swap between the check and the read), opened
    // non-blocking so that a FIFO in its place is refused instead of waiting for a writer.
    fd = openSync(path, constants.O_RDONLY | (constants.O_NONBLOCK ?? 0));
    const st = fstatSync(fd);
    if (!st.isFile()) throw new IdentityError('key_file_io', 'the key file is not a regular file');
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0) {
      throw new IdentityError('key_file_permissions', 'the key file is accessible to group or others (want mode 0600)');
    }
    if (st.size > MAX_KEY_FILE_BYTES) throw malformed(`the key file is larger than ${MAX_KEY_FILE_BYTES} bytes`);
    text = fromUtf8(readFileSync(fd));
  } catch (err) {
    if (err instanceof TalosError) throw err.code === 'bad_utf8' ? malformed('the key file is not UTF-8', err) : err;
    throw new IdentityError('key_file_io', `could not read the key file: ${(err as NodeJS.ErrnoException).code ?? 'error'}`, { cause: err });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  let value: unknown;
  try {
    value = parseJson(text);
  } catch (err) {
    throw malformed('the key file is not valid JSON', err);
  }
  return decodeKeyFile(crypto, value, options);
}
