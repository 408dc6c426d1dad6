import { EncodingError } from '../errors.ts';

const encoder = new TextEncoder();
// ignoreBOM keeps a leading U+FEFF in the text (the default silently strips it), so the strict
// JSON rules (SPEC 1.2) see and refuse it instead of accepting a second form of the same bytes.
const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export const utf8 = (s: string): Uint8Array => encoder.encode(s);

/** Decodes UTF-8, refusing invalid sequences instead of replacing them; a BOM is kept as U+FEFF. */
export function fromUtf8(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    throw new EncodingError('bad_utf8', 'bytes are not valid UTF-8');
  }
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * V8 keeps a typed array of at most this many bytes on its own heap until something asks for
 * its ArrayBuffer; then it moves the array off the heap (a malloc, a sweep and a free later).
 */
export const ON_HEAP_MAX_BYTES = 64;

/**
 * The bytes as a Buffer, for Node's encoders: a view of a large array, a copy (into Node's
 * buffer pool, no malloc) of a small one, which would otherwise be moved off V8's heap.
 */
export function asBuffer(bytes: Uint8Array): Buffer {
  return bytes.byteLength <= ON_HEAP_MAX_BYTES ? Buffer.from(bytes) : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const HEX = /^(?:[0-9a-f]{2})*$/;

export function toHex(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('hex');
}

/** Lower-case hex only, even length. */
export function fromHex(hex: string): Uint8Array {
  if (!HEX.test(hex)) throw new EncodingError('bad_hex', 'not lower-case hex of even length');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/** Big-endian unsigned 32-bit integer (PROTOCOL.md section 1). */
export function writeU32(out: Uint8Array, offset: number, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) {
    throw new EncodingError('bad_u32', 'value is not an unsigned 32-bit integer');
  }
  new DataView(out.buffer, out.byteOffset, out.byteLength).setUint32(offset, value, false);
}

export function readU32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).getUint32(offset, false);
}
