import { addon, addonStatus, failed, input, put, type Addon, type NativeStatus } from './native-addon.ts';

/**
 * ChaCha20-Poly1305 (RFC 8439) through the native addon (native/aead.c): OpenSSL's cipher without
 * node:crypto's objects around it. The node provider takes this path when the addon is in use
 * and found the cipher, else node:crypto's; both give the same bytes (tests). The provider checks
 * lengths (32-byte key, 12-byte nonce, a sealed text at least a tag long) before it calls.
 */
export interface NativeAead {
  seal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array;
  /** The plaintext; undefined when the tag does not verify. */
  open(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Uint8Array | undefined;
}

const TAG = 16;
const KEY_NONCE = 32 + 12;

/** Whether the native path is in use, and if not, why. */
export const nativeAeadStatus: NativeStatus =
  addon === undefined ? addonStatus : addon.chachaSeal ? { active: true } : { active: false, reason: 'this OpenSSL has no ChaCha20-Poly1305' };

type AeadAddon = Required<Pick<Addon, 'chachaSeal' | 'chachaOpen'>>;

function create(native: AeadAddon): NativeAead {
  // Key and nonce cross in the shared input buffer, which the addon wipes; the texts are read
  // where they are and the result written straight into its own new array.
  return {
    // `out` is made first: were its allocation to throw, no key would be left in the buffer.
    seal(key, nonce, plaintext, aad) {
      const out = new Uint8Array(plaintext.length + TAG);
      put(nonce, put(key, 0));
      try {
        native.chachaSeal(input, aad, plaintext, out);
      } catch (err) {
        failed(err, KEY_NONCE);
      }
      return out;
    },
    open(key, nonce, sealed, aad) {
      const out = new Uint8Array(sealed.length - TAG);
      put(nonce, put(key, 0));
      let verified = false;
      try {
        verified = native.chachaOpen(input, aad, sealed, out);
      } catch (err) {
        failed(err, KEY_NONCE);
      }
      return verified ? out : undefined;
    },
  };
}

/** The native path, or undefined when it is not in use (nativeAeadStatus says why). */
export const nativeAead: NativeAead | undefined = addon?.chachaSeal && addon.chachaOpen ? create(addon as AeadAddon) : undefined;
