import { addon, addonStatus, failed, input, NATIVE_SCRATCH_BYTES, output, put, take, type Addon, type NativeStatus } from './native-addon.ts';

/**
 * HMAC-SHA-256 and HKDF-SHA-256 of short inputs through the native addon (native/kdf.c): one
 * call per KDF_CK or message-key HKDF, on OpenSSL's SHA-256 (the CPU's SHA extensions where it
 * has them). The node provider takes this path when the addon is in use and the inputs fit,
 * else the JavaScript one (sha256-small.ts); both give the same bytes (tests).
 */
const MAX_KEY_BYTES = 64; // one block: a longer HMAC key would first be hashed

/** Whether the native path is in use, and if not, why. */
export const nativeKdfStatus: NativeStatus = addonStatus;

export interface NativeKdf {
  /** HMAC-SHA-256 of each message under one key; undefined when the inputs do not fit this path. */
  hmacEach(key: Uint8Array, messages: readonly Uint8Array[]): Uint8Array[] | undefined;
  /** HKDF-SHA-256 (RFC 5869); undefined when the inputs do not fit this path. */
  hkdf(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array | undefined;
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

/** The native path, or undefined when it is off, not built or did not load. */
export const nativeKdf: NativeKdf | undefined = addon ? create(addon) : undefined;
