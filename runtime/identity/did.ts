import { base58 } from '@scure/base';
import { IdentityError } from '../errors.ts';
import { isValidEd25519PublicKey } from '../crypto/ed25519-points.ts';
import { toHex } from '../encoding/bytes.ts';

/**
 * did:talos names an Ed25519 key exactly as did:key does (PROTOCOL.md section 3):
 * `did:talos:z` + base58btc(0xed 0x01 || publicKey). `did:key:z…` parses to the same key, and
 * every DID is normalized to the did:talos form.
 */
export type Did = `did:talos:z${string}`;

const ED25519_MULTICODEC = [0xed, 0x01] as const;
const DECODED_LENGTH = 34;
const PREFIXES = ['did:talos:', 'did:key:'] as const;
/** 34 bytes encode to at most 47 base58 characters: refuse anything longer before decoding. */
const MAX_ID_LENGTH = 48;
const BASE58 = /^[1-9A-HJ-NP-Za-km-z]+$/;

/**
 * Recently accepted DIDs and keys. The curve check (a point decompression) costs far more than
 * the rest of a parse, and its answer for given bytes never changes; a gateway sees the same few
 * DIDs on every call. Only accepted values are kept (a refusal is recomputed, so junk cannot
 * fill the memo), at most MEMO_LIMIT of each, oldest evicted first; keys are handed out as copies.
 */
const MEMO_LIMIT = 1024;
const keyByDid = new Map<string, Uint8Array>();
const didByKey = new Map<string, Did>();

function remember<V>(memo: Map<string, V>, key: string, value: V): void {
  if (memo.size >= MEMO_LIMIT) memo.delete(memo.keys().next().value!);
  memo.set(key, value);
}

export function didFromPublicKey(publicKey: Uint8Array): Did {
  return didOf(publicKey, true);
}

/**
 * The DID of a public key the provider derived from a secret seed ([a]B with a clamped: a
 * canonical encoding of a point of prime order by construction), without the curve check.
 */
export function didOfDerivedKey(publicKey: Uint8Array): Did {
  return didOf(publicKey, false);
}

function didOf(publicKey: Uint8Array, check: boolean): Did {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) throw new IdentityError('did_bad_key', 'an Ed25519 public key is 32 bytes');
  const hex = toHex(publicKey);
  const known = didByKey.get(hex);
  if (known !== undefined) return known;
  if (check && !isValidEd25519PublicKey(publicKey)) {
    throw new IdentityError('did_bad_key', 'not a valid Ed25519 public key (non-canonical or small order)');
  }
  const bytes = new Uint8Array(DECODED_LENGTH);
  bytes.set(ED25519_MULTICODEC, 0);
  bytes.set(publicKey, 2);
  const did: Did = `did:talos:z${base58.encode(bytes)}`;
  // Both ways: the DID is parsed back wherever it travels (tokens, bundles, frames).
  remember(didByKey, hex, did);
  remember(keyByDid, did, new Uint8Array(publicKey)); // a copy even of a Buffer, whose slice() is a view
  return did;
}

/** Parses did:talos or did:key into the public key it names. */
export function publicKeyFromDid(did: string): Uint8Array {
  if (typeof did !== 'string') throw new IdentityError('did_malformed', 'a DID must be a string');
  const known = keyByDid.get(did);
  if (known !== undefined) return known.slice();
  const publicKey = parseDid(did);
  remember(keyByDid, did, publicKey.slice());
  return publicKey;
}

function parseDid(did: string): Uint8Array {
  const prefix = PREFIXES.find((p) => did.startsWith(p));
  if (!prefix) throw new IdentityError('did_bad_method', 'a DID must start with did:talos: or did:key:');
  const id = did.slice(prefix.length);
  if (!id.startsWith('z')) {
    throw new IdentityError('did_bad_multibase', 'the method-specific id must be base58btc (multibase z)');
  }
  const body = id.slice(1);
  if (body.length === 0 || body.length > MAX_ID_LENGTH || !BASE58.test(body)) {
    throw new IdentityError('did_bad_encoding', 'the method-specific id is not base58btc of the right size');
  }
  const bytes = base58.decode(body);
  if (bytes.length !== DECODED_LENGTH) {
    throw new IdentityError('did_bad_length', `the DID must decode to ${DECODED_LENGTH} bytes`);
  }
  if (bytes[0] !== ED25519_MULTICODEC[0] || bytes[1] !== ED25519_MULTICODEC[1]) {
    throw new IdentityError('did_bad_multicodec', 'the DID does not name an Ed25519 key (multicodec 0xed01)');
  }
  const publicKey = bytes.slice(2);
  if (!isValidEd25519PublicKey(publicKey)) {
    throw new IdentityError('did_bad_key', 'the DID names a non-canonical or small-order key');
  }
  return publicKey;
}

/** The did:talos form of any accepted DID: DIDs compare by the key they name. */
export function normalizeDid(did: string): Did {
  return didFromPublicKey(publicKeyFromDid(did));
}

export function isDid(value: unknown): value is Did {
  if (typeof value !== 'string' || !value.startsWith('did:talos:')) return false;
  try {
    publicKeyFromDid(value);
    return true;
  } catch {
    return false;
  }
}
