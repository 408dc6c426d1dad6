import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64, toB64 } from '../encoding/base64url.ts';
import { AuditError } from './errors.ts';
import { HASH_SIZE, isSize } from './merkle.ts';
import { checkKeyName, ed25519NoteVerifier, signNote, verifyNote, type NoteVerifier } from './note.ts';

/**
 * C2SP tlog-checkpoint body: "<origin>\n<size>\n<base64 root>\n", size in decimal without
 * leading zeros, root in padded standard base64. Talos logs write no extension lines and refuse
 * them when reading (closed format: nothing is ever silently ignored).
 */
export interface Checkpoint {
  origin: string;
  size: number;
  root: Uint8Array;
}

export interface SignedCheckpoint extends Checkpoint {
  /** The whole signed note, as stored and served. */
  note: string;
}

const DECIMAL = /^(0|[1-9][0-9]*)$/;

export function checkpointBody(cp: Checkpoint): string {
  checkKeyName(cp.origin);
  if (!isSize(cp.size)) throw new AuditError('bad_checkpoint', 'size is not a safe non-negative integer');
  if (cp.root.length !== HASH_SIZE) throw new AuditError('bad_checkpoint', 'root is 32 bytes');
  return `${cp.origin}\n${cp.size}\n${toB64(cp.root)}\n`;
}

export function parseCheckpointBody(text: string): Checkpoint {
  const lines = text.split('\n');
  if (lines.length !== 4 || lines[3] !== '') throw new AuditError('bad_checkpoint', 'checkpoint body is exactly three lines');
  const [origin, sizeText, rootText] = lines as [string, string, string];
  if (origin.length === 0) throw new AuditError('bad_checkpoint', 'origin is empty');
  if (!DECIMAL.test(sizeText)) throw new AuditError('bad_checkpoint', 'size is not a canonical decimal');
  const size = Number(sizeText);
  if (!isSize(size)) throw new AuditError('bad_checkpoint', 'size is too large');
  let root: Uint8Array;
  try {
    root = fromB64(rootText);
  } catch {
    throw new AuditError('bad_checkpoint', 'root is not standard base64');
  }
  if (root.length !== HASH_SIZE) throw new AuditError('bad_checkpoint', 'root is 32 bytes');
  return { origin, size, root };
}

/** The log's signing identity: its key name equals its origin (PROTOCOL.md section 8). */
export interface LogKey {
  origin: string;
  seed: Uint8Array;
}

export function signCheckpoint(crypto: CryptoProvider, key: LogKey, cp: Omit<Checkpoint, 'origin'>): SignedCheckpoint {
  const body = checkpointBody({ origin: key.origin, size: cp.size, root: cp.root });
  return { origin: key.origin, size: cp.size, root: cp.root, note: signNote(crypto, body, key.origin, key.seed) };
}

export function logVerifier(crypto: CryptoProvider, origin: string, publicKey: Uint8Array): NoteVerifier {
  return ed25519NoteVerifier(crypto, origin, publicKey);
}

/**
 * Opens a signed checkpoint: the log's signature must verify, and the origin line must equal
 * the pinned origin. Other signatures (witnesses) are left for cosignature checks.
 */
export function openCheckpoint(crypto: CryptoProvider, note: string, origin: string, publicKey: Uint8Array): SignedCheckpoint {
  const { text } = verifyNote(note, [logVerifier(crypto, origin, publicKey)]);
  const cp = parseCheckpointBody(text);
  if (cp.origin !== origin) throw new AuditError('bad_checkpoint', 'checkpoint origin is not the pinned origin');
  return { ...cp, note };
}
