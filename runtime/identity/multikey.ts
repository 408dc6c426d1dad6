import { base58 } from '@scure/base';
import { IdentityError } from '../errors.ts';

/**
 * Multikey `publicKeyMultibase` values: `z` + base58btc(multicodec varint || key), as did:key
 * writes them. Ed25519 public keys use 0xed 0x01 (z6Mk…), X25519 public keys 0xec 0x01 (z6LS…).
 */
export const MULTICODEC = {
  ed25519: [0xed, 0x01],
  x25519: [0xec, 0x01],
} as const;

export type MultikeyType = keyof typeof MULTICODEC;
const KEY_LENGTH = 32;
/** 34 bytes never need more than 47 base58 characters: refuse longer input before decoding. */
const MAX_MULTIBASE_LENGTH = 48;
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/;

export function encodeMultikey(type: MultikeyType, key: Uint8Array): string {
  if (!(key instanceof Uint8Array) || key.length !== KEY_LENGTH) {
    throw new IdentityError('multikey_bad_length', `a ${type} key is ${KEY_LENGTH} bytes`);
  }
  const bytes = new Uint8Array(2 + KEY_LENGTH);
  bytes.set(MULTICODEC[type], 0);
  bytes.set(key, 2);
  return `z${base58.encode(bytes)}`;
}

/** Decodes a multibase key of the expected type; the caller checks the key itself. */
export function decodeMultikey(type: MultikeyType, value: string): Uint8Array {
  if (typeof value !== 'string' || !value.startsWith('z')) {
    throw new IdentityError('multikey_bad_encoding', 'a multikey must be base58btc (multibase z)');
  }
  const body = value.slice(1);
  if (body.length === 0 || body.length > MAX_MULTIBASE_LENGTH || !BASE58.test(body)) {
    throw new IdentityError('multikey_bad_encoding', 'a multikey must be base58btc of the right size');
  }
  const bytes = base58.decode(body);
  if (bytes.length !== 2 + KEY_LENGTH) {
    throw new IdentityError('multikey_bad_length', `a multikey must decode to ${2 + KEY_LENGTH} bytes`);
  }
  const [c0, c1] = MULTICODEC[type];
  if (bytes[0] !== c0 || bytes[1] !== c1) {
    throw new IdentityError('multikey_bad_multicodec', `the multikey is not a ${type} key`);
  }
  return bytes.slice(2);
}
