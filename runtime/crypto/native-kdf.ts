import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

/**
 * HMAC-SHA-256 and HKDF-SHA-256 of short inputs through the native addon (native/kdf.c, built
 * by `npm ci`): one call per KDF_CK or message-key HKDF, on OpenSSL's SHA-256 (the CPU's SHA
 * extensions where it has them). The node provider takes this path when the addon is built and
 * the inputs fit, else the JavaScript one (sha256-small.ts); both give the same bytes (tests).
 * TALOS_NATIVE=0 turns it off.
 *
 * Bytes cross in two buffers of this module instance, named on every call (the addon keeps no
 * pointer between calls): the input is copied in and wiped by the addon, the output copied out
 * into fresh arrays and wiped here. JavaScript runs one call at a time per thread, so the
 * buffers are never shared between calls in flight.
 */
export const NATIVE_ENV = 'TALOS_NATIVE';
/** Input bytes (key and messages, or ikm, salt and info) and output bytes of one call, at most. */
export const NATIVE_SCRATCH_BYTES = 1024;
const MAX_KEY_BYTES = 64; // one block: a longer HMAC key would first be hashed

const ADDON = new URL('./native/build/Release/talos_kdf.node', import.meta.url);

interface Addon {
  /** input = key || messages, output = their MACs. */
  hmacEach(input: Uint8Array, output: Uint8Array, keyLength: number, count: number, messageLength: number): void;
  /** input = ikm || salt || info, output = the OKM. */
  hkdf(input: Uint8Array, output: Uint8Array, ikmLength: number, saltLength: number, infoLength: number, length: number): void;
}

function load(): { addon?: Addon; reason?: string } {
  if (process.env[NATIVE_ENV] === '0') return { reason: `${NATIVE_ENV}=0` };
  if (!existsSync(ADDON)) return { reason: 'not built (npm ci builds it; see runtime/crypto/native/build.mjs)' };
  try {
    return { addon: createRequire(import.meta.url)(fileURLToPath(ADDON)) as Addon };
  } catch (err) {
    return { reason: `did not load: ${(err as Error).message}` };
  }
}

const loaded = load();
/** Whether the native path is in use, and if not, why. */
export const nativeKdfStatus: { readonly active: boolean; readonly reason?: string } = loaded.addon
  ? { active: true }
  : { active: false, reason: loaded.reason! };

const input = new Uint8Array(NATIVE_SCRATCH_BYTES);
const output = new Uint8Array(NATIVE_SCRATCH_BYTES);

/** Moves `length` bytes at `from` out of the output buffer into an array of its own, wiping them there. */
function take(from: number, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) {
    out[i] = output[from + i]!;
    output[from + i] = 0;
  }
  return out;
}

// Plain loops, not TypedArray set(): for a few dozen bytes the builtin call costs more than the copy.
function put(bytes: Uint8Array, at: number): number {
  for (let i = 0; i < bytes.length; i++) input[at + i] = bytes[i]!;
  return at + bytes.length;
}

export interface NativeKdf {
  /** HMAC-SHA-256 of each message under one key; undefined when the inputs do not fit this path. */
  hmacEach(key: Uint8Array, messages: readonly Uint8Array[]): Uint8Array[] | undefined;
  /** HKDF-SHA-256 (RFC 5869); undefined when the inputs do not fit this path. */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array | undefined;
}

/** After an addon call that threw (never expected: lengths are checked first), what it did not wipe. */
function failed(err: unknown, inputBytes: number): never {
  input.fill(0, 0, inputBytes);
  output.fill(0);
  throw err;
}

function create(addon: Addon): NativeKdf {
  return {
    hmacEach(key, messages) {
      const count = messages.length;
      const each = count > 0 ? messages[0]!.length : 0;
      if (key.length > MAX_KEY_BYTES || key.length + count * each > NATIVE_SCRATCH_BYTES || count * 32 > NATIVE_SCRATCH_BYTES) return undefined;
      for (const m of messages) if (m.length !== each) return undefined;
      let at = put(key, 0);
      for (const m of messages) at = put(m, at);
      try {
        addon.hmacEach(input, output, key.length, count, each);
      } catch (err) {
        failed(err, at);
      }
      const macs: Uint8Array[] = [];
      for (let i = 0; i < count; i++) macs.push(take(i * 32, 32));
      return macs;
    },
    hkdf(ikm, salt, info, length) {
      if (salt.length > MAX_KEY_BYTES || ikm.length + salt.length + info.length > NATIVE_SCRATCH_BYTES || length > NATIVE_SCRATCH_BYTES) return undefined;
      const at = put(info, put(salt, put(ikm, 0)));
      try {
        addon.hkdf(input, output, ikm.length, salt.length, info.length, length);
      } catch (err) {
        failed(err, at);
      }
      return take(0, length);
    },
  };
}

/** For tests: true when both exchange buffers hold only zeros (nothing left behind by a call). */
export function nativeScratchIsWiped(): boolean {
  return input.every((b) => b === 0) && output.every((b) => b === 0);
}

/** The native path, or undefined when it is off, not built or did not load. */
export const nativeKdf: NativeKdf | undefined = loaded.addon ? create(loaded.addon) : undefined;
