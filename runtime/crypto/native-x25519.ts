import { addon, addonStatus, failed, input, output, put, take, type Addon, type NativeStatus } from './native-addon.ts';

/**
 * X25519 (RFC 7748) through the native addon (native/x25519.c): OpenSSL's own scalar
 * multiplications, without node:crypto's key objects around them (a key pair costs one
 * fixed-base multiplication, a DH one ladder). The node provider takes this path when the addon
 * is in use and found those functions, else node:crypto's; both give the same bytes (tests).
 * Arguments are 32-byte arrays: the provider checks lengths before it calls.
 */
export interface NativeX25519 {
  publicKey(secretKey: Uint8Array): Uint8Array;
  /** The shared secret; undefined when it is all zeros (a low-order public key). */
  sharedSecret(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array | undefined;
}

const KEY = 32;

/** Whether the native path is in use, and if not, why. */
export const nativeX25519Status: NativeStatus =
  addon === undefined ? addonStatus : addon.x25519 ? { active: true } : { active: false, reason: addon.x25519Unavailable ?? 'not exported' };

type X25519Addon = Required<Pick<Addon, 'x25519' | 'x25519Base'>>;

function create(native: X25519Addon): NativeX25519 {
  return {
    publicKey(secretKey) {
      put(secretKey, 0);
      try {
        native.x25519Base(input, output);
      } catch (err) {
        failed(err, KEY);
      }
      return take(0, KEY);
    },
    sharedSecret(secretKey, publicKey) {
      put(publicKey, put(secretKey, 0));
      let nonzero = false;
      try {
        nonzero = native.x25519(input, output);
      } catch (err) {
        failed(err, 2 * KEY);
      }
      const shared = take(0, KEY);
      return nonzero ? shared : undefined;
    },
  };
}

/** The native path, or undefined when it is not in use (nativeX25519Status says why). */
export const nativeX25519: NativeX25519 | undefined = addon?.x25519 && addon.x25519Base ? create(addon as X25519Addon) : undefined;
