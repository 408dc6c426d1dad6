import type { CryptoProvider } from '../crypto/provider.ts';
import { concatBytes, fromUtf8, readU32, toHex, utf8 } from '../encoding/bytes.ts';
import { fromB64, toB64 } from '../encoding/base64url.ts';
import { AuditError } from './errors.ts';

/**
 * C2SP signed-note (c2sp.org/signed-note): note text ending in a newline, one blank line, then
 * signature lines "— <key name> <base64(key id || signature)>\n" (em dash U+2014). The key id is
 * the first 4 bytes of SHA-256(name || 0x0A || type || public key).
 */
export const SIG_TYPE_ED25519 = 0x01;
export const SIG_TYPE_COSIGNATURE = 0x04;
/** The spec asks verifiers to accept at least 16 signatures. */
export const MAX_NOTE_SIGNATURES = 32;
export const MAX_NOTE_BYTES = 16 * 1024;
const EM_DASH = '\u2014';
const CONTROL = /[\u0000-\u0009\u000b-\u001f]/;
const NAME_BAD = /[\s+]/u;

export interface NoteSignature {
  name: string;
  keyId: number;
  /** The bytes after the 4-byte key id. */
  signature: Uint8Array;
}

export interface ParsedNote {
  text: string;
  signatures: NoteSignature[];
}

export function checkKeyName(name: string): void {
  if (typeof name !== 'string' || name.length === 0 || NAME_BAD.test(name) || CONTROL.test(name) || name.includes('\n')) {
    throw new AuditError('bad_note', 'key names are non-empty and contain no spaces or plus signs');
  }
}

export function keyId(crypto: CryptoProvider, name: string, type: number, publicKey: Uint8Array): Uint8Array {
  checkKeyName(name);
  return crypto.sha256(concatBytes(utf8(name), new Uint8Array([0x0a, type]), publicKey)).slice(0, 4);
}

export function signatureLine(name: string, keyIdBytes: Uint8Array, signature: Uint8Array): string {
  checkKeyName(name);
  return `${EM_DASH} ${name} ${toB64(concatBytes(keyIdBytes, signature))}\n`;
}

/** Splits a signed note strictly; refuses anything the format does not allow. */
export function parseNote(note: string): ParsedNote {
  if (typeof note !== 'string' || Buffer.byteLength(note, 'utf8') > MAX_NOTE_BYTES) throw new AuditError('bad_note', 'note is too large');
  if (CONTROL.test(note)) throw new AuditError('bad_note', 'note contains control characters');
  if (!note.endsWith('\n')) throw new AuditError('bad_note', 'note does not end with a newline');
  // The text is separated from the signatures by the LAST blank line.
  const split = note.lastIndexOf('\n\n');
  if (split < 0) throw new AuditError('bad_note', 'note has no signature block');
  const text = note.slice(0, split + 1);
  const lines = note.slice(split + 2, -1).split('\n');
  if (lines.length > MAX_NOTE_SIGNATURES) throw new AuditError('bad_note', 'note has too many signatures');
  const signatures = lines.map((line) => {
    const m = /^\u2014 (\S+) (\S+)$/u.exec(line);
    if (!m) throw new AuditError('bad_note', 'malformed signature line');
    const name = m[1]!;
    checkKeyName(name);
    let raw: Uint8Array;
    try {
      raw = fromB64(m[2]!);
    } catch {
      throw new AuditError('bad_note', 'signature is not standard base64');
    }
    if (raw.length < 5) throw new AuditError('bad_note', 'signature is too short');
    return { name, keyId: readU32(raw, 0), signature: raw.slice(4) };
  });
  if (text.length === 0) throw new AuditError('bad_note', 'note text is empty');
  return { text, signatures };
}

export interface NoteVerifier {
  name: string;
  keyId: number;
  verify(text: string, signature: Uint8Array): boolean;
}

export function ed25519NoteVerifier(crypto: CryptoProvider, name: string, publicKey: Uint8Array): NoteVerifier {
  if (!crypto.ed25519IsValidPublicKey(publicKey)) throw new AuditError('bad_key', 'not a valid Ed25519 public key');
  const id = readU32(keyId(crypto, name, SIG_TYPE_ED25519, publicKey), 0);
  return { name, keyId: id, verify: (text, sig) => sig.length === 64 && crypto.ed25519Verify(publicKey, utf8(text), sig) };
}

/**
 * Verifies a note against known keys. Unknown (name, key id) pairs are ignored; a known key
 * whose signature fails rejects the whole note; at least one known key must have signed.
 */
export function verifyNote(note: string, verifiers: NoteVerifier[]): { text: string; verifiedBy: string[]; parsed: ParsedNote } {
  const parsed = parseNote(note);
  const verifiedBy: string[] = [];
  for (const s of parsed.signatures) {
    const v = verifiers.find((k) => k.name === s.name && k.keyId === s.keyId);
    if (!v) continue;
    if (!v.verify(parsed.text, s.signature)) throw new AuditError('bad_signature', `signature by ${s.name} does not verify`);
    verifiedBy.push(s.name);
  }
  if (verifiedBy.length === 0) throw new AuditError('unknown_key', 'no signature from a known key');
  return { text: parsed.text, verifiedBy, parsed };
}

export function signNote(crypto: CryptoProvider, text: string, name: string, seed: Uint8Array): string {
  if (!text.endsWith('\n') || CONTROL.test(text)) throw new AuditError('bad_note', 'note text must end with a newline and have no control characters');
  const pub = crypto.ed25519PublicKey(seed);
  const sig = crypto.ed25519Sign(seed, utf8(text));
  return `${text}\n${signatureLine(name, keyId(crypto, name, SIG_TYPE_ED25519, pub), sig)}`;
}

/** C2SP verifier key string: <name>+<hex key id>+<base64(type || public key)>. */
export function verifierKeyString(crypto: CryptoProvider, name: string, publicKey: Uint8Array): string {
  return `${name}+${toHex(keyId(crypto, name, SIG_TYPE_ED25519, publicKey))}+${toB64(concatBytes(new Uint8Array([SIG_TYPE_ED25519]), publicKey))}`;
}

export function parseVerifierKey(crypto: CryptoProvider, vkey: string): { name: string; publicKey: Uint8Array } {
  // Names never contain '+'; the base64 part may.
  const parts = typeof vkey === 'string' ? vkey.trim().split('+') : [];
  if (parts.length < 3) throw new AuditError('bad_key', 'verifier key is name+keyid+base64');
  const name = parts[0]!;
  const idHex = parts[1]!;
  const b64 = parts.slice(2).join('+');
  let raw: Uint8Array;
  try {
    raw = fromB64(b64);
  } catch {
    throw new AuditError('bad_key', 'verifier key is not base64');
  }
  if (raw.length !== 33 || raw[0] !== SIG_TYPE_ED25519) throw new AuditError('bad_key', 'verifier key is not an Ed25519 key');
  const publicKey = raw.slice(1);
  if (toHex(keyId(crypto, name, SIG_TYPE_ED25519, publicKey)) !== idHex) throw new AuditError('bad_key', 'verifier key id does not match');
  return { name, publicKey };
}

export { fromUtf8 };

/**
 * Private signer key string, as golang.org/x/mod/sumdb/note writes it:
 * PRIVATE+KEY+<name>+<hex key id>+<base64(type || 32-byte seed)>. Type 0x01 signs notes
 * (a log), type 0x04 signs cosignatures (a witness).
 */
export function signerKeyString(crypto: CryptoProvider, name: string, seed: Uint8Array, type: number = SIG_TYPE_ED25519): string {
  const pub = crypto.ed25519PublicKey(seed);
  return `PRIVATE+KEY+${name}+${toHex(keyId(crypto, name, type, pub))}+${toB64(concatBytes(new Uint8Array([type]), seed))}`;
}

export function parseSignerKey(crypto: CryptoProvider, text: string): { name: string; seed: Uint8Array; type: number; publicKey: Uint8Array } {
  const parts = text.trim().split('+');
  if (parts.length < 5 || parts[0] !== 'PRIVATE' || parts[1] !== 'KEY') throw new AuditError('bad_key', 'signer key is PRIVATE+KEY+name+keyid+base64');
  const name = parts[2]!;
  const idHex = parts[3]!;
  let raw: Uint8Array;
  try {
    raw = fromB64(parts.slice(4).join('+'));
  } catch {
    throw new AuditError('bad_key', 'signer key is not base64');
  }
  const type = raw[0]!;
  if (raw.length !== 33 || (type !== SIG_TYPE_ED25519 && type !== SIG_TYPE_COSIGNATURE)) throw new AuditError('bad_key', 'signer key is not an Ed25519 key');
  const seed = raw.slice(1);
  const publicKey = crypto.ed25519PublicKey(seed);
  if (toHex(keyId(crypto, name, type, publicKey)) !== idHex) throw new AuditError('bad_key', 'signer key id does not match');
  return { name, seed, type, publicKey };
}

/** Verifier key string for either type (0x01 log, 0x04 witness). */
export function typedVerifierKeyString(crypto: CryptoProvider, name: string, publicKey: Uint8Array, type: number): string {
  return `${name}+${toHex(keyId(crypto, name, type, publicKey))}+${toB64(concatBytes(new Uint8Array([type]), publicKey))}`;
}
