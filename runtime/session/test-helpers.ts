import type { CryptoProvider } from '../crypto/provider.ts';
import { publishPrekeys, makeIdentity, type PublishedPrekeys } from './fixtures.ts';
import type { LocalIdentity } from './handshake.ts';
import { acceptSession, initiateSession, sealMessage, type Offer, type ResponderLookup, type Session } from './session.ts';
import { bytesEqual, utf8 } from '../encoding/bytes.ts';

/** Test helpers: a responder lookup answered from published prekeys, and an established pair. */
export function lookupFrom(pub: PublishedPrekeys, offer: Offer): ResponderLookup {
  const pqspk = pub.secrets.pqspk;
  const out: ResponderLookup = { requiresPq: pqspk !== undefined, ekSeen: false, spk: pub.secrets.spk };
  if (offer.opk) out.opk = pub.opks.find((k) => k.id === offer.opk!.id)!.secret;
  if (offer.pqOpk) out.pq = { seed: pub.pqOpks.find((k) => k.id === offer.pqOpk!.id)!.secret.seed, oneTime: true };
  else if (pqspk) out.pq = { seed: pqspk.seed, oneTime: false };
  return out;
}

export interface Pair {
  alice: Session;
  bob: Session;
  aliceId: LocalIdentity;
  bobId: LocalIdentity;
}

/** Alice initiates to Bob (X3DH with an OPK unless told otherwise); Bob accepts a first message. */
export function establishedPair(crypto: CryptoProvider, now = 1_000_000, options: { pq?: boolean } = {}): Pair {
  const aliceId = makeIdentity(crypto);
  const bobId = makeIdentity(crypto);
  const pub = publishPrekeys(crypto, bobId, { opks: 1, pq: options.pq ?? false });
  const offer: Offer = { bundle: pub.bundle, opk: pub.opks[0]!.json };
  const a0 = initiateSession(crypto, aliceId, offer, now);
  const first = sealMessage(crypto, a0, utf8('hello'));
  const accepted = acceptSession(crypto, bobId, first.envelope, lookupFrom(pub, offer), now);
  if (!bytesEqual(accepted.plaintext, utf8('hello'))) throw new Error('handshake broken');
  return { alice: first.session, bob: accepted.session, aliceId, bobId };
}
