import type { CryptoProvider, KeyPair } from '../crypto/provider.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { IdentityError } from '../errors.ts';
import { didOfDerivedKey, publicKeyFromDid, type Did } from './did.ts';

/**
 * An agent's long-term identity (PROTOCOL.md section 3): the Ed25519 key pair IKsig, which the
 * DID names, and the X25519 key pair IKdh, certified by IKsig inside each prekey bundle
 * (never derived from IKsig).
 */
export interface Identity {
  readonly did: Did;
  /** IKsig: secretKey is the 32-byte Ed25519 seed. */
  readonly sig: KeyPair;
  /** IKdh: secretKey is the 32-byte X25519 scalar. */
  readonly dh: KeyPair;
}

export interface IdentitySeeds {
  /** 32-byte Ed25519 seed; random when absent. */
  sigSeed?: Uint8Array;
  /** 32-byte X25519 secret; random when absent. */
  dhSecret?: Uint8Array;
}

/** A fresh identity from the provider's random source (or from fixed seeds, for vectors). */
export function generateIdentity(crypto: CryptoProvider, seeds: IdentitySeeds = {}): Identity {
  const sig = crypto.ed25519KeyPair(seeds.sigSeed);
  const dh = crypto.x25519KeyPair(seeds.dhSecret);
  return { did: didOfDerivedKey(sig.publicKey), sig, dh };
}

/**
 * Rebuilds an identity from its two secrets and checks it against the public values claimed
 * for it (a key file's did and ik_dh): a mismatch is refused with `identity_key_mismatch`.
 */
export function identityFromSecrets(
  crypto: CryptoProvider,
  secrets: { sigSeed: Uint8Array; dhSecret: Uint8Array },
  claimed: { did: string; dhPublicKey: Uint8Array },
): Identity {
  const identity = generateIdentity(crypto, secrets);
  const claimedSig = publicKeyFromDid(claimed.did);
  if (!bytesEqual(identity.sig.publicKey, claimedSig) || !bytesEqual(identity.dh.publicKey, claimed.dhPublicKey)) {
    throw new IdentityError('identity_key_mismatch', 'the public keys do not match the secret keys');
  }
  return identity;
}
