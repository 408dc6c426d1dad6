import { addon, addonStatus, failed, input, output, put, take, type Addon, type NativeStatus } from './native-addon.ts';

/**
 * Ed25519 public keys and signatures (RFC 8032) through the native addon (native/ed25519.c):
 * OpenSSL's own functions, without node:crypto's key import and signing context around them.
 * The node provider takes this path when the addon is in use and found those functions, else
 * node:crypto's; both give the same bytes (tests). Verification is node:crypto's either way.
 * Seeds and public keys are 32-byte arrays: the provider checks lengths before it calls.
 */
export interface NativeEd25519 {
  publicKey(seed: Uint8Array): Uint8Array;
  /** `publicKey` must be the seed's own (the signature commits to it). */
  sign(seed: Uint8Array, publicKey: Uint8Array, message: Uint8Array): Uint8Array;
}

const KEY = 32;
const SIG = 64;

type Ed25519Addon = Required<Pick<Addon, 'ed25519Public' | 'ed25519Sign'>>;
const found = (a: Addon): a is Addon & Ed25519Addon => a.ed25519Public !== undefined && a.ed25519Sign !== undefined;

/** Whether the native path is in use, and if not, why. */
export const nativeEd25519Status: NativeStatus =
  addon === undefined ? addonStatus : found(addon) ? { active: true } : { active: false, reason: addon.ed25519Unavailable ?? 'not exported' };

function create(native: Ed25519Addon): NativeEd25519 {
  return {
    publicKey(seed) {
      put(seed, 0);
      try {
        native.ed25519Public(input, output);
      } catch (err) {
        failed(err, KEY);
      }
      return take(0, KEY);
    },
    sign(seed, publicKey, message) {
      put(publicKey, put(seed, 0));
      try {
        native.ed25519Sign(input.subarray(0, 2 * KEY), message, output);
      } catch (err) {
        failed(err, 2 * KEY);
      }
      input.fill(0, KEY, 2 * KEY); // the public half: not a secret, but the buffer is left clean
      return take(0, SIG);
    },
  };
}

/** The native path, or undefined when it is not in use (nativeEd25519Status says why). */
export const nativeEd25519: NativeEd25519 | undefined = addon !== undefined && found(addon) ? create(addon) : undefined;
