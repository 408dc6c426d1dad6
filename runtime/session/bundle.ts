import type { CryptoProvider } from '../crypto/provider.ts';
import type { Did } from '../identity/did.ts';
import {
  parseOneTimePrekey,
  verifyPqOneTimePrekey,
  verifyPrekeyBundle,
  type OneTimePrekey,
  type PqOneTimePrekey,
  type PrekeyBundle,
} from '../identity/prekeys.ts';
import { IdentityError } from '../errors.ts';
import { sessionError } from './errors.ts';

/**
 * What the initiator needs from the responder's published prekeys, checked by runtime/identity
 * (verifyPrekeyBundle, parseOneTimePrekey, verifyPqOneTimePrekey). Their IdentityErrors are
 * re-thrown as SessionErrors (bad_bundle, bundle_expired, bad_pq_prekey) with the original as
 * `cause`, so a session caller handles one error type.
 */
export type PrekeyBundleJson = PrekeyBundle;
export type OneTimePrekeyJson = OneTimePrekey;
export type PqOneTimePrekeyJson = PqOneTimePrekey;

export interface PeerPrekeys {
  did: Did;
  signingKey: Uint8Array;
  ikDh: Uint8Array;
  spk: { id: number; pub: Uint8Array };
  opk?: { id: number; pub: Uint8Array };
  /** The ML-KEM key to encapsulate to: the one-time one when offered, else the last-resort pqspk. */
  pq?: { id: number; pub: Uint8Array };
}

function rethrow(err: unknown, fallback: 'bad_bundle' | 'bad_pq_prekey'): never {
  if (err instanceof IdentityError) {
    const code = err.code === 'bundle_expired' ? 'bundle_expired' : fallback;
    throw sessionError(code, err.message, err);
  }
  throw err;
}

export function checkPeerPrekeys(
  crypto: CryptoProvider,
  bundle: unknown,
  offered: { opk?: unknown; pqOpk?: unknown },
  now: number,
): PeerPrekeys {
  let verified;
  try {
    verified = verifyPrekeyBundle(crypto, bundle, now);
  } catch (err) {
    rethrow(err, 'bad_bundle');
  }
  const out: PeerPrekeys = {
    did: verified.did,
    signingKey: verified.identityKey,
    ikDh: verified.ikDh,
    spk: verified.spk,
  };
  if (offered.opk !== undefined) {
    try {
      out.opk = parseOneTimePrekey(offered.opk);
    } catch (err) {
      rethrow(err, 'bad_bundle');
    }
  }
  if (offered.pqOpk !== undefined) {
    if (!verified.pqspk) throw sessionError('bad_pq_prekey', 'a one-time ML-KEM prekey needs a bundle with pqspk');
    try {
      out.pq = verifyPqOneTimePrekey(crypto, verified.did, offered.pqOpk);
    } catch (err) {
      rethrow(err, 'bad_pq_prekey');
    }
  } else if (verified.pqspk) {
    out.pq = verified.pqspk;
  }
  return out;
}
