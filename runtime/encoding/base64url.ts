import { EncodingError } from '../errors.ts';
import { asBuffer } from './bytes.ts';

/**
 * base64url without padding (RFC 4648 section 5), decoded strictly: every byte string has
 * exactly one accepted encoding. Refused: padding, whitespace, '+' and '/', a length of
 * 1 mod 4, and non-zero unused trailing bits. Node's Buffer decoder accepts all of these.
 */
const ALPHABET = /^[A-Za-z0-9_-]*$/;
const VALUE: Record<string, number> = {};
'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'
  .split('')
  .forEach((c, i) => (VALUE[c] = i));

/**
 * Whether the unused low bits of the last character are zero: 4 of them when the length is
 * 2 mod 4, 2 when it is 3 mod 4, none otherwise. `text` is base64url of a possible length.
 */
export function unusedBitsAreZero(text: string): boolean {
  const rem = text.length % 4;
  return rem < 2 || (VALUE[text[text.length - 1]!]! & (rem === 2 ? 0x0f : 0x03)) === 0;
}

export function toB64u(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64url');
}

export function fromB64u(text: string, expectedLength?: number): Uint8Array {
  if (typeof text !== 'string' || !ALPHABET.test(text)) {
    throw new EncodingError('bad_base64url', 'not unpadded base64url');
  }
  if (text.length % 4 === 1) throw new EncodingError('bad_base64url', 'base64url length is impossible');
  if (!unusedBitsAreZero(text)) throw new EncodingError('bad_base64url', 'base64url has non-zero trailing bits');
  const out = new Uint8Array(Buffer.from(text, 'base64url'));
  if (expectedLength !== undefined && out.length !== expectedLength) {
    throw new EncodingError('bad_length', `expected ${expectedLength} bytes, got ${out.length}`);
  }
  return out;
}

/** Standard base64 with padding, as C2SP signed notes write it. Decoded strictly. */
const STD = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function toB64(bytes: Uint8Array): string {
  return asBuffer(bytes).toString('base64');
}

export function fromB64(text: string): Uint8Array {
  if (typeof text !== 'string' || !STD.test(text)) {
    throw new EncodingError('bad_base64', 'not padded standard base64');
  }
  const out = new Uint8Array(Buffer.from(text, 'base64'));
  if (toB64(out) !== text) throw new EncodingError('bad_base64', 'base64 is not canonical');
  return out;
}
