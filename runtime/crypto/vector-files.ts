import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Reads the external test vectors in contracts/vectors/external/ for the crypto tests. Each file
 * is parsed once per process (the Wycheproof ML-KEM files are near 1 MB).
 */
export const EXTERNAL_VECTORS_DIR = join(dirname(fileURLToPath(import.meta.url)), '../../contracts/vectors/external');

export interface WycheproofTest {
  tcId: number;
  comment?: string;
  flags: string[];
  result: 'valid' | 'invalid' | 'acceptable';
  [field: string]: unknown;
}

export interface WycheproofGroup {
  type: string;
  tests: WycheproofTest[];
  [field: string]: unknown;
}

export interface WycheproofFile {
  algorithm: string;
  numberOfTests: number;
  testGroups: WycheproofGroup[];
}

const parsed = new Map<string, unknown>();

export function readExternalJson<T>(relativePath: string): T {
  let value = parsed.get(relativePath);
  if (value === undefined) {
    value = JSON.parse(readFileSync(join(EXTERNAL_VECTORS_DIR, relativePath), 'utf8'));
    parsed.set(relativePath, value);
  }
  return value as T;
}

export function wycheproof(name: string): WycheproofFile {
  return readExternalJson<WycheproofFile>(`wycheproof/${name}`);
}

/** Hex to bytes for vector fields; a malformed vector file is a test bug, so it throws. */
export function hex(value: unknown): Uint8Array {
  if (typeof value !== 'string' || value.length % 2 !== 0 || !/^[0-9a-f]*$/i.test(value)) {
    throw new Error('vector field is not hex');
  }
  return new Uint8Array(Buffer.from(value, 'hex'));
}

export function toHexString(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}
