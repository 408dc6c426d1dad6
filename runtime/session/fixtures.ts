import type { CryptoProvider } from '../crypto/provider.ts';
import { generateIdentity, type Identity } from '../identity/identity.ts';
import {
  createOneTimePrekeys,
  createPqOneTimePrekeys,
  createPrekeyBundle,
  type MlKemPrekeySecret,
  type OneTimePrekey,
  type PqOneTimePrekey,
  type PrekeyBundle,
  type SignedPrekeySecrets,
  type X25519PrekeySecret,
} from '../identity/prekeys.ts';

/**
 * Identities and published prekeys for tests, vectors and benchmarks, made with
 * runtime/identity's own constructors. ML-KEM one-time ids start at 2000 and the last-resort
 * key is 1000, so the ML-KEM id space has no collision (contracts/SPEC.md section 5).
 */
export const makeIdentity = (crypto: CryptoProvider): Identity => generateIdentity(crypto);

export interface PublishedPrekeys {
  bundle: PrekeyBundle;
  secrets: SignedPrekeySecrets;
  opks: { id: number; secret: X25519PrekeySecret; json: OneTimePrekey }[];
  pqOpks: { id: number; secret: MlKemPrekeySecret; json: PqOneTimePrekey }[];
}

export function publishPrekeys(
  crypto: CryptoProvider,
  who: Identity,
  options: { pq?: boolean; opks?: number; pqOpks?: number; exp?: number; spkId?: number } = {},
): PublishedPrekeys {
  const { bundle, secrets } = createPrekeyBundle(crypto, who, {
    spkId: options.spkId ?? 1,
    exp: options.exp ?? Date.UTC(2100, 0, 1),
    withPq: options.pq ?? false,
    pqspkId: 1000,
  });
  const o = createOneTimePrekeys(crypto, { startId: 100, count: options.opks ?? 0 });
  const q = options.pq
    ? createPqOneTimePrekeys(crypto, who, { startId: 2000, count: options.pqOpks ?? 0 })
    : { prekeys: [], secrets: [] };
  return {
    bundle,
    secrets,
    opks: o.prekeys.map((json, i) => ({ id: json.id, secret: o.secrets[i]!, json })),
    pqOpks: q.prekeys.map((json, i) => ({ id: json.id, secret: q.secrets[i]!, json })),
  };
}
