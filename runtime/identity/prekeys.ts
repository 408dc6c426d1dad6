import type { CryptoProvider } from '../crypto/provider.ts';
import type { OneTimePrekey, PqOneTimePrekey, PrekeyBundle } from '../../contracts/types.gen.ts';
import { validate } from '../../contracts/validate.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { IdentityError, SchemaError } from '../errors.ts';
import { normalizeDid, publicKeyFromDid, type Did } from './did.ts';
import type { Identity } from './identity.ts';
import {
  isCanonicalX25519PublicKey,
  isValidMlKem768PublicKey,
  MLKEM768_PUBLIC_KEY_LENGTH,
  X25519_PUBLIC_KEY_LENGTH,
} from './key-checks.ts';
import { DOMAINS, signObject, signingInput } from './signing.ts';

/**
 * Prekey bundles and one-time prekeys (PROTOCOL.md section 4, contracts/SPEC.md section 4).
 * Creation returns the public, signed object AND the secret halves, which the responder keeps
 * in a PrekeyStore (prekey-store.ts). Verification returns decoded bytes or throws
 * IdentityError with a stable code.
 */
export type { OneTimePrekey, PqOneTimePrekey, PrekeyBundle };

export const PREKEY_BUNDLE_VERSION = 1;
export const MAX_U32 = 0xffffffff;
/** How many one-time prekeys one call may create (a bound on one batch's work and memory). */
export const MAX_ONE_TIME_PREKEY_BATCH = 1000;

export interface X25519PrekeySecret {
  id: number;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}
export interface MlKemPrekeySecret {
  id: number;
  /** The 64-byte FIPS 203 seed d || z: the only stored form of an ML-KEM private key. */
  seed: Uint8Array;
  publicKey: Uint8Array;
}
export interface SignedPrekeySecrets {
  spk: X25519PrekeySecret;
  pqspk?: MlKemPrekeySecret;
}

export interface CreateBundleOptions {
  spkId: number;
  /** Expiry in integer ms since the epoch; the bundle is valid while now < exp. */
  exp: number;
  /** Add a last-resort ML-KEM-768 key (PQXDH). */
  withPq?: boolean;
  /** Id of the ML-KEM key; defaults to spkId. */
  pqspkId?: number;
}

function checkU32(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > MAX_U32) {
    throw new IdentityError('prekey_bad_id', `${what} must be an unsigned 32-bit integer`);
  }
}
function checkMs(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new IdentityError('prekey_bad_time', `${what} must be integer milliseconds since the epoch`);
  }
}

/** A fresh signed prekey (and optional ML-KEM last-resort key) in a bundle signed by IKsig. */
export function createPrekeyBundle(
  crypto: CryptoProvider,
  identity: Identity,
  options: CreateBundleOptions,
): { bundle: PrekeyBundle; secrets: SignedPrekeySecrets } {
  checkU32(options.spkId, 'spkId');
  checkMs(options.exp, 'exp');
  const pqId = options.pqspkId ?? options.spkId;
  checkU32(pqId, 'pqspkId');
  const spkPair = crypto.x25519KeyPair();
  const secrets: SignedPrekeySecrets = { spk: { id: options.spkId, ...spkPair } };
  const unsigned: Omit<PrekeyBundle, 'sig'> = {
    v: PREKEY_BUNDLE_VERSION,
    did: identity.did,
    ik_dh: toB64u(identity.dh.publicKey),
    spk: { id: options.spkId, pub: toB64u(spkPair.publicKey) },
    exp: options.exp,
  };
  if (options.withPq) {
    const kem = crypto.mlkemKeyPair();
    secrets.pqspk = { id: pqId, seed: kem.seed, publicKey: kem.publicKey };
    unsigned.pqspk = { id: pqId, pub: toB64u(kem.publicKey) };
  }
  return { bundle: signPrekeyBundle(crypto, identity, unsigned), secrets };
}

/** Signs a bundle body with domain talos/v1/prekey-bundle (any `sig` it had is replaced). */
export function signPrekeyBundle(
  crypto: CryptoProvider,
  identity: Identity,
  bundle: Omit<PrekeyBundle, 'sig'> & { sig?: string },
): PrekeyBundle {
  if (normalizeDid(bundle.did) !== identity.did) {
    throw new IdentityError('bundle_bad_did', 'a bundle can only be signed by the identity its did names');
  }
  const { sig: _old, ...body } = bundle;
  return signObject(crypto, identity.sig.secretKey, DOMAINS.prekeyBundle, body);
}

/** A bundle that passed every check, with its keys decoded. */
export interface VerifiedPrekeyBundle {
  did: Did;
  /** IKsig.pub, the key the DID names. */
  identityKey: Uint8Array;
  ikDh: Uint8Array;
  spk: { id: number; pub: Uint8Array };
  pqspk?: { id: number; pub: Uint8Array };
  exp: number;
  /** The bundle exactly as received. */
  bundle: PrekeyBundle;
}

/**
 * Checks, in this order (the first failure names the error): schema (`bundle_malformed`),
 * the DID names a valid Ed25519 key (`bundle_bad_did`), the signature under
 * talos/v1/prekey-bundle (`bundle_bad_signature`), X25519 keys canonical and the ML-KEM key
 * passing the modulus check (`bundle_bad_key`), and `now < exp` (`bundle_expired`).
 */
export function verifyPrekeyBundle(crypto: CryptoProvider, value: unknown, now: number): VerifiedPrekeyBundle {
  checkMs(now, 'now');
  let bundle: PrekeyBundle;
  try {
    bundle = validate('prekey-bundle', value);
  } catch (err) {
    if (err instanceof SchemaError) throw new IdentityError('bundle_malformed', err.message, { cause: err });
    throw err;
  }
  let identityKey: Uint8Array;
  try {
    identityKey = publicKeyFromDid(bundle.did);
  } catch (err) {
    throw new IdentityError('bundle_bad_did', 'the bundle did does not name a valid Ed25519 key', { cause: err });
  }
  const sig = fromB64u(bundle.sig, 64);
  if (!crypto.ed25519Verify(identityKey, signingInput(DOMAINS.prekeyBundle, bundle as unknown as Record<string, unknown>), sig)) {
    throw new IdentityError('bundle_bad_signature', 'the prekey bundle signature does not verify');
  }
  const ikDh = fromB64u(bundle.ik_dh, X25519_PUBLIC_KEY_LENGTH);
  const spkPub = fromB64u(bundle.spk.pub, X25519_PUBLIC_KEY_LENGTH);
  if (!isCanonicalX25519PublicKey(ikDh)) throw new IdentityError('bundle_bad_key', 'ik_dh is not a canonical X25519 key');
  if (!isCanonicalX25519PublicKey(spkPub)) throw new IdentityError('bundle_bad_key', 'spk.pub is not a canonical X25519 key');
  let pqspk: { id: number; pub: Uint8Array } | undefined;
  if (bundle.pqspk) {
    const pub = fromB64u(bundle.pqspk.pub, MLKEM768_PUBLIC_KEY_LENGTH);
    if (!isValidMlKem768PublicKey(pub)) {
      throw new IdentityError('bundle_bad_key', 'pqspk.pub fails the ML-KEM-768 modulus check');
    }
    pqspk = { id: bundle.pqspk.id, pub };
  }
  if (!(now < bundle.exp)) throw new IdentityError('bundle_expired', 'the prekey bundle has expired');
  return {
    did: bundle.did as Did,
    identityKey,
    ikDh,
    spk: { id: bundle.spk.id, pub: spkPub },
    ...(pqspk ? { pqspk } : {}),
    exp: bundle.exp,
    bundle,
  };
}

function checkBatch(startId: number, count: number): void {
  checkU32(startId, 'startId');
  if (!Number.isInteger(count) || count < 0 || count > MAX_ONE_TIME_PREKEY_BATCH) {
    throw new IdentityError('prekey_bad_count', `count must be 0..${MAX_ONE_TIME_PREKEY_BATCH}`);
  }
  if (startId + count - 1 > MAX_U32) throw new IdentityError('prekey_bad_id', 'prekey ids would pass 2^32 − 1');
}

/** `count` one-time X25519 prekeys with ids startId, startId + 1, … (public halves unsigned). */
export function createOneTimePrekeys(
  crypto: CryptoProvider,
  options: { startId: number; count: number },
): { prekeys: OneTimePrekey[]; secrets: X25519PrekeySecret[] } {
  checkBatch(options.startId, options.count);
  const prekeys: OneTimePrekey[] = [];
  const secrets: X25519PrekeySecret[] = [];
  for (let i = 0; i < options.count; i++) {
    const id = options.startId + i;
    const pair = crypto.x25519KeyPair();
    prekeys.push({ id, pub: toB64u(pair.publicKey) });
    secrets.push({ id, ...pair });
  }
  return { prekeys, secrets };
}

/** Checks a one-time X25519 prekey: `prekey_malformed` (schema) or `prekey_bad_key`. */
export function parseOneTimePrekey(value: unknown): { id: number; pub: Uint8Array } {
  let prekey: OneTimePrekey;
  try {
    prekey = validate('one-time-prekey', value);
  } catch (err) {
    if (err instanceof SchemaError) throw new IdentityError('prekey_malformed', err.message, { cause: err });
    throw err;
  }
  const pub = fromB64u(prekey.pub, X25519_PUBLIC_KEY_LENGTH);
  if (!isCanonicalX25519PublicKey(pub)) throw new IdentityError('prekey_bad_key', 'the one-time prekey is not a canonical X25519 key');
  return { id: prekey.id, pub };
}

/** The object a one-time ML-KEM prekey's signature covers: { did, id, pub }. */
function pqSigned(did: Did, prekey: { id: number; pub: string }): Record<string, unknown> {
  return { did, id: prekey.id, pub: prekey.pub };
}

/** `count` one-time ML-KEM-768 prekeys, each signed with domain talos/v1/pq-prekey. */
export function createPqOneTimePrekeys(
  crypto: CryptoProvider,
  identity: Identity,
  options: { startId: number; count: number },
): { prekeys: PqOneTimePrekey[]; secrets: MlKemPrekeySecret[] } {
  checkBatch(options.startId, options.count);
  const prekeys: PqOneTimePrekey[] = [];
  const secrets: MlKemPrekeySecret[] = [];
  for (let i = 0; i < options.count; i++) {
    const id = options.startId + i;
    const kem = crypto.mlkemKeyPair();
    const pub = toB64u(kem.publicKey);
    const { sig } = signObject(crypto, identity.sig.secretKey, DOMAINS.pqPrekey, pqSigned(identity.did, { id, pub }));
    prekeys.push({ id, pub, sig });
    secrets.push({ id, seed: kem.seed, publicKey: kem.publicKey });
  }
  return { prekeys, secrets };
}

/**
 * Checks a one-time ML-KEM prekey published by `did`: `pq_prekey_malformed` (schema),
 * `pq_prekey_bad_signature` (talos/v1/pq-prekey over {did, id, pub}), `pq_prekey_bad_key`
 * (modulus check). `did` may be in did:key form; it is signed in did:talos form.
 */
export function verifyPqOneTimePrekey(crypto: CryptoProvider, did: string, value: unknown): { id: number; pub: Uint8Array } {
  let prekey: PqOneTimePrekey;
  try {
    prekey = validate('pq-one-time-prekey', value);
  } catch (err) {
    if (err instanceof SchemaError) throw new IdentityError('pq_prekey_malformed', err.message, { cause: err });
    throw err;
  }
  const owner = normalizeDid(did);
  const ok = crypto.ed25519Verify(
    publicKeyFromDid(owner),
    signingInput(DOMAINS.pqPrekey, pqSigned(owner, prekey)),
    fromB64u(prekey.sig, 64),
  );
  if (!ok) throw new IdentityError('pq_prekey_bad_signature', 'the one-time ML-KEM prekey signature does not verify');
  const pub = fromB64u(prekey.pub, MLKEM768_PUBLIC_KEY_LENGTH);
  if (!isValidMlKem768PublicKey(pub)) throw new IdentityError('pq_prekey_bad_key', 'the one-time ML-KEM prekey fails the modulus check');
  return { id: prekey.id, pub };
}
