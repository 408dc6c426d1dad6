import type { CryptoProvider } from '../crypto/provider.ts';
import { CryptoError } from '../errors.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { sessionError } from './errors.ts';
import { kdfCk, kdfRk, MESSAGE_KEY_BYTES, MESSAGE_KEYS_BYTES, messageKeys } from './kdf.ts';
import { isCanonicalX25519 } from './keys.ts';
import {
  MAX_CHAIN_INDEX,
  MAX_PLAINTEXT_BYTES,
  MAX_SKIP,
  MAX_STORED_SKIPPED,
  SKIPPED_KEY_MAX_AGE_MS,
} from './limits.ts';

/**
 * The Double Ratchet (PROTOCOL.md section 6) as pure functions over plain, immutable data.
 * No function here mutates its input: each returns a new state, and a refusal (a thrown
 * SessionError) means the caller still holds the state it had. Fields that do not change are
 * shared between the old and the new state, so a message costs no deep copy.
 */

export const HEADER_BYTES = 40;
export const AD_BYTES = 128;

/** A message key kept for a message that has not arrived yet. */
export interface SkippedKey {
  readonly dh: Uint8Array; // the sender's ratchet public key of that chain
  readonly n: number;
  readonly mk: Uint8Array;
  readonly ts: number; // when it was stored (ms), for SKIPPED_KEY_MAX_AGE_MS
}

export interface RatchetState {
  readonly ad: Uint8Array; // 128 bytes, PROTOCOL.md section 5
  readonly rk: Uint8Array;
  readonly dhsSecret: Uint8Array;
  readonly dhsPublic: Uint8Array;
  readonly dhr: Uint8Array | null;
  readonly cks: Uint8Array | null;
  readonly ckr: Uint8Array | null;
  readonly ns: number;
  readonly nr: number;
  readonly pn: number;
  /** Oldest first. */
  readonly skipped: readonly SkippedKey[];
}

export interface Header {
  readonly dh: Uint8Array;
  readonly pn: number;
  readonly n: number;
}

// Headers and AAD are written and read byte by byte, never through a DataView or a subarray:
// either would give these small (on-heap) arrays an ArrayBuffer, which V8 then allocates off
// the heap (malloc, and later a sweep and a free) on every message.

export function encodeHeader(dh: Uint8Array, pn: number, n: number): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES);
  out.set(dh, 0);
  writeU32(out, 32, pn);
  writeU32(out, 36, n);
  return out;
}

export function decodeHeader(header: Uint8Array): Header {
  if (header.length !== HEADER_BYTES) throw sessionError('bad_header', `a header is ${HEADER_BYTES} bytes`);
  const dh = header.slice(0, 32);
  if (!isCanonicalX25519(dh)) throw sessionError('bad_header', 'header ratchet key is not canonical');
  return { dh, pn: readU32(header, 32), n: readU32(header, 36) };
}

function writeU32(out: Uint8Array, at: number, value: number): void {
  out[at] = value >>> 24;
  out[at + 1] = value >>> 16;
  out[at + 2] = value >>> 8;
  out[at + 3] = value;
}

function readU32(bytes: Uint8Array, at: number): number {
  return ((bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!) >>> 0;
}

/**
 * AD || header, in one buffer reused by every message: the providers read the AAD during the
 * seal or open call and keep no reference to it, and it holds only public bytes.
 */
const aadScratch = new Uint8Array(AD_BYTES + HEADER_BYTES);

function aadFor(ad: Uint8Array, header: Uint8Array): Uint8Array {
  const aad = ad.length === AD_BYTES ? aadScratch : new Uint8Array(ad.length + header.length);
  aad.set(ad, 0);
  aad.set(header, ad.length);
  return aad;
}

function dh(crypto: CryptoProvider, secret: Uint8Array, pub: Uint8Array): Uint8Array {
  try {
    return crypto.x25519(secret, pub);
  } catch (err) {
    if (err instanceof CryptoError) throw sessionError('bad_public_key', 'ratchet key gives a low-order result', err);
    throw err;
  }
}

/** Alice (initiator): RK = SK, DHr = Bob's signed prekey, and she can send at once. */
export function initInitiator(
  crypto: CryptoProvider,
  sk: Uint8Array,
  ad: Uint8Array,
  responderSpk: Uint8Array,
): RatchetState {
  const dhs = crypto.x25519KeyPair();
  const { rk, ck } = kdfRk(crypto, sk, dh(crypto, dhs.secretKey, responderSpk));
  return {
    ad,
    rk,
    dhsSecret: dhs.secretKey,
    dhsPublic: dhs.publicKey,
    dhr: responderSpk,
    cks: ck,
    ckr: null,
    ns: 0,
    nr: 0,
    pn: 0,
    skipped: [],
  };
}

/** Bob (responder): RK = SK, his first ratchet key pair is his signed prekey. */
export function initResponder(sk: Uint8Array, ad: Uint8Array, spk: { secretKey: Uint8Array; publicKey: Uint8Array }): RatchetState {
  return {
    ad,
    rk: sk,
    dhsSecret: spk.secretKey,
    dhsPublic: spk.publicKey,
    dhr: null,
    cks: null,
    ckr: null,
    ns: 0,
    nr: 0,
    pn: 0,
    skipped: [],
  };
}

export interface Encrypted {
  state: RatchetState;
  header: Uint8Array;
  ciphertext: Uint8Array;
}

export function encrypt(crypto: CryptoProvider, state: RatchetState, plaintext: Uint8Array): Encrypted {
  if (plaintext.length > MAX_PLAINTEXT_BYTES) {
    throw sessionError('plaintext_too_large', `a message carries at most ${MAX_PLAINTEXT_BYTES} bytes`);
  }
  if (state.cks === null) throw sessionError('chain_exhausted', 'no sending chain yet (the responder sends after it receives)');
  if (state.ns >= MAX_CHAIN_INDEX) throw sessionError('chain_exhausted', 'sending chain reached the u32 limit');
  const { mk, ck } = kdfCk(crypto, state.cks);
  const header = encodeHeader(state.dhsPublic, state.pn, state.ns);
  const ciphertext = withMessageKeys(crypto, mk, (key, nonce) => crypto.chachaSeal(key, nonce, plaintext, aadFor(state.ad, header)));
  return { state: { ...state, cks: ck, ns: state.ns + 1 }, header, ciphertext };
}

export interface Decrypted {
  state: RatchetState;
  plaintext: Uint8Array;
}

function open(crypto: CryptoProvider, mk: Uint8Array, ct: Uint8Array, aad: Uint8Array): Uint8Array {
  try {
    return withMessageKeys(crypto, mk, (key, nonce) => crypto.chachaOpen(key, nonce, ct, aad));
  } catch (err) {
    if (err instanceof CryptoError) throw sessionError('decrypt_failed', 'message did not authenticate', err);
    throw err;
  }
}

/**
 * A message's key and nonce live in one buffer of their own, reused by every message and wiped
 * after each AEAD call. node:crypto reads a key through its ArrayBuffer, and a fresh small
 * array has none until V8 moves it off the heap: a malloc per key and per nonce, every message.
 */
const messageKeyScratch = new Uint8Array(new ArrayBuffer(MESSAGE_KEYS_BYTES));
const scratchKey = messageKeyScratch.subarray(0, MESSAGE_KEY_BYTES);
const scratchNonce = messageKeyScratch.subarray(MESSAGE_KEY_BYTES);

function withMessageKeys<T>(crypto: CryptoProvider, mk: Uint8Array, use: (key: Uint8Array, nonce: Uint8Array) => T): T {
  const derived = messageKeys(crypto, mk);
  // Byte loops: on 44 bytes a TypedArray builtin call (set, fill) costs more than the copy.
  for (let i = 0; i < MESSAGE_KEYS_BYTES; i++) {
    messageKeyScratch[i] = derived[i]!;
    derived[i] = 0;
  }
  try {
    return use(scratchKey, scratchNonce);
  } finally {
    for (let i = 0; i < MESSAGE_KEYS_BYTES; i++) messageKeyScratch[i] = 0;
  }
}

/** Derives the keys from index `from` up to (not including) `to` of a receiving chain. */
function skipKeys(
  crypto: CryptoProvider,
  ck: Uint8Array,
  from: number,
  to: number,
  chainKey: Uint8Array,
  now: number,
  into: SkippedKey[],
): Uint8Array {
  let c = ck;
  for (let i = from; i < to; i++) {
    const step = kdfCk(crypto, c);
    into.push({ dh: chainKey, n: i, mk: step.mk, ts: now });
    c = step.ck;
  }
  return c;
}

/**
 * Decrypts one message. Works on local copies and returns a new state only after the AEAD tag
 * verifies; any refusal throws and the caller's state is untouched. Expired skipped keys are
 * purged in the same step (committed with the state when the message authenticates).
 */
export function decrypt(
  crypto: CryptoProvider,
  state: RatchetState,
  headerBytes: Uint8Array,
  ciphertext: Uint8Array,
  now: number,
): Decrypted {
  const h = decodeHeader(headerBytes);
  const aad = aadFor(state.ad, headerBytes);

  let skipped = state.skipped;
  const oldest = now - SKIPPED_KEY_MAX_AGE_MS;
  if (skipped.length > 0 && skipped[0]!.ts < oldest) skipped = skipped.filter((k) => k.ts >= oldest);
  else if (skipped.some((k) => k.ts < oldest)) skipped = skipped.filter((k) => k.ts >= oldest);

  // 1. A key stored for this message (it arrived late).
  for (let i = 0; i < skipped.length; i++) {
    const k = skipped[i]!;
    if (k.n === h.n && bytesEqual(k.dh, h.dh)) {
      const plaintext = open(crypto, k.mk, ciphertext, aad);
      const rest = skipped.slice(0, i).concat(skipped.slice(i + 1));
      return { state: { ...state, skipped: rest }, plaintext };
    }
  }

  const added: SkippedKey[] = [];
  const newChain = state.dhr === null || !bytesEqual(h.dh, state.dhr);

  if (!newChain) {
    // 2. The current receiving chain.
    // The initiator holds DHr = the responder's signed prekey (public, in the bundle) and no
    // receiving chain until the first reply: a header naming that key is a forgery.
    if (state.ckr === null) throw sessionError('decrypt_failed', 'no receiving chain for this ratchet key');
    if (h.n < state.nr) throw sessionError('duplicate_message', 'message key already used or no longer held');
    if (h.n - state.nr > MAX_SKIP) throw sessionError('too_many_skipped', `more than ${MAX_SKIP} skipped keys in one chain`);
    const ck = skipKeys(crypto, state.ckr, state.nr, h.n, state.dhr!, now, added);
    const step = kdfCk(crypto, ck);
    const plaintext = open(crypto, step.mk, ciphertext, aad);
    return {
      state: { ...state, ckr: step.ck, nr: h.n + 1, skipped: mergeSkipped(skipped, added) },
      plaintext,
    };
  }

  // 3. A new ratchet key: finish the old receiving chain up to PN, then a DH ratchet step.
  if (state.ckr !== null && h.pn > state.nr && h.pn - state.nr > MAX_SKIP) {
    throw sessionError('too_many_skipped', `more than ${MAX_SKIP} skipped keys in one chain`);
  }
  if (h.n > MAX_SKIP) throw sessionError('too_many_skipped', `more than ${MAX_SKIP} skipped keys in one chain`);
  if (state.ckr !== null && state.dhr !== null) skipKeys(crypto, state.ckr, state.nr, h.pn, state.dhr, now, added);
  const dhr = h.dh; // decodeHeader's own copy
  const recv = kdfRk(crypto, state.rk, dh(crypto, state.dhsSecret, dhr));
  const ck = skipKeys(crypto, recv.ck, 0, h.n, dhr, now, added);
  const step = kdfCk(crypto, ck);
  const plaintext = open(crypto, step.mk, ciphertext, aad);
  // Authenticated: only now draw the new sending key pair (a forgery costs no key generation).
  const dhs = crypto.x25519KeyPair();
  const send = kdfRk(crypto, recv.rk, dh(crypto, dhs.secretKey, dhr));
  return {
    state: {
      ad: state.ad,
      rk: send.rk,
      dhsSecret: dhs.secretKey,
      dhsPublic: dhs.publicKey,
      dhr,
      cks: send.ck,
      ckr: step.ck,
      ns: 0,
      nr: h.n + 1,
      pn: state.ns,
      skipped: mergeSkipped(skipped, added),
    },
    plaintext,
  };
}

/** Appends newly skipped keys; past MAX_STORED_SKIPPED the oldest are dropped (as libsignal). */
function mergeSkipped(kept: readonly SkippedKey[], added: SkippedKey[]): readonly SkippedKey[] {
  if (added.length === 0) return kept;
  const all = kept.concat(added);
  return all.length > MAX_STORED_SKIPPED ? all.slice(all.length - MAX_STORED_SKIPPED) : all;
}
