import type { CryptoProvider } from '../crypto/provider.ts';
import { toB64u } from '../encoding/base64url.ts';
import type { Did } from '../identity/did.ts';
import type { Identity } from '../identity/identity.ts';
import { DOMAINS, signingInput } from '../identity/signing.ts';

/**
 * The initiator's certificate of its X25519 identity key, carried on first messages as
 * `ik_sig`: without it anyone could open a session under another agent's DID with their own
 * IKdh (X3DH authenticates the initiator only through IKdh_A). It follows the one signing rule
 * (PROTOCOL.md section 1) with a new domain, as that section asks of a new signed type:
 *   ik_sig = Ed25519.sign(IKsig_A, utf8("talos/v1/session-identity") || 0x00 || JCS({ did, ik_dh }))
 */
function certInput(did: Did, ikDh: Uint8Array): Uint8Array {
  return signingInput(DOMAINS.sessionIdentity, { did, ik_dh: toB64u(ikDh) });
}

const cache = new WeakMap<Identity, Uint8Array>();

/** Signs once per identity (Ed25519 signing is deterministic, so the cached value is the same). */
export function signIdentityCert(crypto: CryptoProvider, self: Identity): Uint8Array {
  let sig = cache.get(self);
  if (!sig) {
    sig = crypto.ed25519Sign(self.sig.secretKey, certInput(self.did, self.dh.publicKey));
    cache.set(self, sig);
  }
  return sig;
}

export function verifyIdentityCert(
  crypto: CryptoProvider,
  did: Did,
  signingKey: Uint8Array,
  ikDh: Uint8Array,
  sig: Uint8Array,
): boolean {
  return sig.length === 64 && crypto.ed25519Verify(signingKey, certInput(did, ikDh), sig);
}
