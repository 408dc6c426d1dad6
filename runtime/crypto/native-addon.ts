import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * The native addon (native/*.c, built by `npm ci`): short KDFs, ChaCha20-Poly1305, X25519 and
 * Ed25519 signing on the OpenSSL inside Node, for the node provider (native-kdf.ts,
 * native-aead.ts, native-x25519.ts, native-ed25519.ts), and the simulator's leak filter
 * (simulations/secrets-scan.ts). When it is not built, does not load or is turned off
 * (TALOS_NATIVE=0), their users take their other paths, which give the same results (tests).
 *
 * Bytes cross in two buffers of this module instance, named on every call (the addon keeps no
 * pointer between calls): the input is copied in and wiped by the addon, the output copied out
 * into fresh arrays and wiped here. JavaScript runs one call at a time per thread, so the
 * buffers are never shared between calls in flight.
 */
export const NATIVE_ENV = 'TALOS_NATIVE';
/** Input bytes and output bytes of one call, at most. */
export const NATIVE_SCRATCH_BYTES = 1024;

const ADDON = new URL('./native/build/Release/talos_native.node', import.meta.url);
/** What checkouts before the addon took X25519 built (the KDFs alone). */
const OLD_ADDON = new URL('./native/build/Release/talos_kdf.node', import.meta.url);

export interface Addon {
  /** input = key || messages, output = their MACs. */
  hmacEach(input: Uint8Array, output: Uint8Array, keyLength: number, count: number, messageLength: number): void;
  /** input = ikm || salt || info, output = the OKM. */
  hkdf(input: Uint8Array, output: Uint8Array, ikmLength: number, saltLength: number, infoLength: number, length: number): void;
  /** keyNonce = key || nonce (wiped), out = ciphertext || tag. Absent when this OpenSSL has no ChaCha20-Poly1305. */
  chachaSeal?(keyNonce: Uint8Array, aad: Uint8Array, plaintext: Uint8Array, out: Uint8Array): void;
  /** keyNonce = key || nonce (wiped), out = the plaintext; false (out wiped) when the tag does not verify. */
  chachaOpen?(keyNonce: Uint8Array, aad: Uint8Array, sealed: Uint8Array, out: Uint8Array): boolean;
  /** input = scalar || u, output = the shared secret; false when it is all zeros. Absent when x25519Unavailable says why. */
  x25519?(input: Uint8Array, output: Uint8Array): boolean;
  /** input = scalar, output = its public key. */
  x25519Base?(input: Uint8Array, output: Uint8Array): void;
  x25519Unavailable?: string;
  /** input = seed (wiped), output = its public key. Absent when ed25519Unavailable says why. */
  ed25519Public?(input: Uint8Array, output: Uint8Array): void;
  /** keys = seed || its public key (the seed wiped, also when the call is refused), out = the signature (64 bytes). */
  ed25519Sign?(keys: Uint8Array, message: Uint8Array, out: Uint8Array): void;
  ed25519Unavailable?: string;
  /**
   * The simulator's leak filter (native/secret-filter.c): false only when `text` holds no
   * registered secret by simulations/secrets-scan.ts's rules. Absent in builds from before it.
   */
  mayHoldSecret?(text: string, heads16: Uint8Array, heads32: Uint8Array, used: Uint8Array, canaries: boolean): boolean;
}

export interface NativeStatus {
  readonly active: boolean;
  readonly reason?: string;
}

function load(): { addon?: Addon; reason?: string } {
  if (process.env[NATIVE_ENV] === '0') return { reason: `${NATIVE_ENV}=0` };
  if (!existsSync(ADDON)) {
    if (existsSync(OLD_ADDON)) return { reason: 'built by an older checkout (npm rebuild builds this one)' };
    return { reason: 'not built (npm ci builds it; see runtime/crypto/native/build.mjs)' };
  }
  try {
    return { addon: createRequire(import.meta.url)(fileURLToPath(ADDON)) as Addon };
  } catch (err) {
    return { reason: `did not load: ${(err as Error).message}` };
  }
}

const loaded = load();
/** The addon, or undefined when it is off, not built or did not load (addonStatus says which). */
export const addon: Addon | undefined = loaded.addon;
export const addonStatus: NativeStatus = loaded.addon ? { active: true } : { active: false, reason: loaded.reason! };

export const input = new Uint8Array(NATIVE_SCRATCH_BYTES);
export const output = new Uint8Array(NATIVE_SCRATCH_BYTES);

/** Moves `length` bytes at `from` out of the output buffer into an array of its own, wiping them there. */
export function take(from: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = output[from + i]!;
    output[from + i] = 0;
  }
  return out;
}

// Plain loops, not TypedArray set(): for a few dozen bytes the builtin call costs more than the copy.
/** Copies `bytes` into the input buffer at `at`; returns where they end. */
export function put(bytes: Uint8Array, at: number): number {
  for (let i = 0; i < bytes.length; i++) input[at + i] = bytes[i]!;
  return at + bytes.length;
}

/** After an addon call that threw (never expected: lengths are checked first), what it did not wipe. */
export function failed(err: unknown, inputBytes: number): never {
  input.fill(0, 0, inputBytes);
  output.fill(0);
  throw err;
}

/** For tests: true when both exchange buffers hold only zeros (nothing left behind by a call). */
export function nativeScratchIsWiped(): boolean {
  return input.every((b) => b === 0) && output.every((b) => b === 0);
}
