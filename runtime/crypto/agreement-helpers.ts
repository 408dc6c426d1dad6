import fc from 'fast-check';
import { CryptoError } from '../errors.ts';
import { createNobleProvider } from './noble.ts';
import { createNodeProvider } from './node.ts';
import { hex, readExternalJson, toHexString } from './vector-files.ts';

/**
 * Shared pieces of the provider agreement properties (agreement-*.test.ts).
 *
 * Property: on any input, valid or not, the two providers give the same bytes, the same
 * accept/reject verdict, or the same CryptoError code. Inputs lean toward the interesting
 * edges: invalid and small-order keys, bit-flipped signatures, tampered ciphertexts, tags and
 * AAD, wrong lengths.
 */
export const RUNS = 1000;
export const noble = createNobleProvider();
export const node = createNodeProvider();

/** A comparable outcome: hex of the bytes, a boolean verdict, or the refusal code. */
export function outcome(fn: () => unknown): string {
  try {
    const value = fn();
    if (value instanceof Uint8Array) return `bytes:${toHexString(value)}`;
    if (typeof value === 'boolean') return `verdict:${value}`;
    return `value:${JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? toHexString(v) : v))}`;
  } catch (error) {
    if (error instanceof CryptoError) return `refused:${error.code}`;
    return `untyped:${String(error)}`;
  }
}

export function agree(call: (p: typeof noble) => unknown): string {
  const a = outcome(() => call(noble));
  const b = outcome(() => call(node));
  if (a !== b) throw new Error(`providers disagree: noble ${a.slice(0, 80)} vs node ${b.slice(0, 80)}`);
  if (a.startsWith('untyped:')) throw new Error(`untyped error: ${a}`);
  return a;
}

export const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
export const anyBytes = (max = 96) => fc.uint8Array({ minLength: 0, maxLength: max });
export const flip = (data: Uint8Array, bit: number): Uint8Array => {
  const out = data.slice();
  if (out.length > 0) out[(bit >>> 3) % out.length]! ^= 1 << (bit & 7);
  return out;
};

// Edge-case Ed25519 keys: the speccheck keys (small order, non-canonical) and their neighbours.
const speccheck = readExternalJson<{ cases: { public_key: string }[] }>('ed25519-speccheck.json');
const specialEdKeys = [...new Set(speccheck.cases.map((c) => c.public_key))].map(hex);
export const edKey = fc.oneof(bytes(32), fc.constantFrom(...specialEdKeys), anyBytes(40));

// Edge-case X25519 public keys: 0, 1, the order-8 points, p-1, p, p+1 and the top bit set.
const specialXKeys = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff',
].map(hex);
export const xPublic = fc.oneof(bytes(32), fc.constantFrom(...specialXKeys), anyBytes(40));

