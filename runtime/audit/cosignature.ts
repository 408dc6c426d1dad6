import type { CryptoProvider } from '../crypto/provider.ts';
import { concatBytes, readU32, utf8 } from '../encoding/bytes.ts';
import { AuditError } from './errors.ts';
import { checkKeyName, keyId, parseNote, signatureLine, SIG_TYPE_COSIGNATURE } from './note.ts';
import { parseCheckpointBody } from './checkpoint.ts';

/**
 * C2SP tlog-cosignature, Ed25519 (type 0x04). The witness signs
 * "cosignature/v1\ntime <t>\n" || checkpoint note text, and the signature line carries
 * base64(key id || u64 big-endian t || 64-byte signature). t is POSIX seconds.
 */
const HEADER = 'cosignature/v1\n';
const COSIG_LENGTH = 8 + 64;
/** A cosignature timestamp must stay below 2^63; we also keep it a safe JS integer. */
const MAX_TIME = Number.MAX_SAFE_INTEGER;

export interface WitnessKey {
  name: string;
  seed: Uint8Array;
}

export function cosignedMessage(checkpointText: string, time: number): Uint8Array {
  return utf8(`${HEADER}time ${time}\n${checkpointText}`);
}

function u64(n: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n), false);
  return out;
}

export function cosignatureLine(crypto: CryptoProvider, key: WitnessKey, checkpointText: string, time: number): string {
  if (!Number.isSafeInteger(time) || time < 0 || time > MAX_TIME) throw new AuditError('bad_time', 'cosignature time is not a valid POSIX time');
  parseCheckpointBody(checkpointText);
  const pub = crypto.ed25519PublicKey(key.seed);
  const sig = crypto.ed25519Sign(key.seed, cosignedMessage(checkpointText, time));
  return signatureLine(key.name, keyId(crypto, key.name, SIG_TYPE_COSIGNATURE, pub), concatBytes(u64(time), sig));
}

/** Adds a cosignature line to a signed checkpoint note. */
export function addCosignature(note: string, line: string): string {
  return note + line;
}

export interface VerifiedCosignature {
  name: string;
  time: number;
}

/**
 * Finds and verifies the cosignature of the given witness in a note. Returns null when the
 * witness did not cosign; throws bad_signature when its line is present but does not verify.
 */
export function verifyCosignature(crypto: CryptoProvider, note: string, witnessName: string, witnessPublicKey: Uint8Array): VerifiedCosignature | null {
  checkKeyName(witnessName);
  const parsed = parseNote(note);
  const id = readU32(keyId(crypto, witnessName, SIG_TYPE_COSIGNATURE, witnessPublicKey), 0);
  const line = parsed.signatures.find((s) => s.name === witnessName && s.keyId === id);
  if (!line) return null;
  if (line.signature.length !== COSIG_LENGTH) throw new AuditError('bad_signature', 'cosignature has the wrong length');
  const time64 = new DataView(line.signature.buffer, line.signature.byteOffset, 8).getBigUint64(0, false);
  if (time64 > BigInt(MAX_TIME)) throw new AuditError('bad_signature', 'cosignature time is out of range');
  const time = Number(time64);
  const ok = crypto.ed25519Verify(witnessPublicKey, cosignedMessage(parsed.text, time), line.signature.slice(8));
  if (!ok) throw new AuditError('bad_signature', `cosignature by ${witnessName} does not verify`);
  return { name: witnessName, time };
}
