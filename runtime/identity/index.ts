/** Identity: DIDs, the signing rule, DID documents, prekeys and key files (one import for callers). */
export { didFromPublicKey, publicKeyFromDid, normalizeDid, isDid, type Did } from './did.ts';
export { DOMAINS, signingInput, signObject, verifyObject, type Domain } from './signing.ts';
export { generateIdentity, identityFromSecrets, type Identity, type IdentitySeeds } from './identity.ts';
export { encodeMultikey, decodeMultikey, MULTICODEC, type MultikeyType } from './multikey.ts';
export { isCanonicalX25519PublicKey, isValidMlKem768PublicKey } from './key-checks.ts';
export {
  resolveDid,
  signDidDocument,
  verifyDidDocument,
  DID_CONTEXT,
  type DidDocument,
  type ResolveOptions,
  type VerifiedDidDocument,
} from './did-document.ts';
export {
  createPrekeyBundle,
  signPrekeyBundle,
  verifyPrekeyBundle,
  createOneTimePrekeys,
  parseOneTimePrekey,
  createPqOneTimePrekeys,
  verifyPqOneTimePrekey,
  MAX_ONE_TIME_PREKEY_BATCH,
  type PrekeyBundle,
  type OneTimePrekey,
  type PqOneTimePrekey,
  type CreateBundleOptions,
  type VerifiedPrekeyBundle,
  type SignedPrekeySecrets,
  type X25519PrekeySecret,
  type MlKemPrekeySecret,
} from './prekeys.ts';
export { createMemoryPrekeyStore, type PrekeyStore, MAX_STORED_ONE_TIME_PREKEYS, MAX_STORED_SIGNED_PREKEYS } from './prekey-store.ts';
export {
  encodeKeyFile,
  decodeKeyFile,
  saveKeyFile,
  loadKeyFile,
  PLAINTEXT_KEY_FILE,
  type KeyFile,
  type KeyFileCipher,
} from './key-file.ts';
