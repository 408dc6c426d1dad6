import { withMethods, type CryptoProvider, type KeyPair } from '../runtime/crypto/provider.ts';

/** Distinct inputs remembered per run at most, per table (a run sees a few hundred keys and signatures). */
export const VERDICT_MEMO_LIMIT = 100_000;
/** Longer signed messages are verified every time, so the memo's size stays bounded (tokens and notes are ~0.5 KiB). */
export const VERIFY_MEMO_MESSAGE_BYTES = 4096;

const latin1 = (b: unknown) => (b instanceof Uint8Array ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1') : undefined);

/**
 * The run's provider, answering again what it has already answered. Every party of a run lives
 * in this one process and shares the provider (in a deployment each would compute its own), so:
 *  - the verdicts of `ed25519IsValidPublicKey` and `ed25519Verify` are remembered per input:
 *    both are pure functions of their bytes, asked again for the same keys at every
 *    checkpoint, DID parse and token check, and for the same prekey bundle by every agent;
 *  - a signature made here with a key pair made here is known to verify (Ed25519 signing is
 *    deterministic, and every honestly made signature passes the strict check of PROTOCOL.md
 *    section 2), so its first verification is not computed either;
 *  - an X25519 shared secret is the same from both ends (X25519(a, B) = X25519(b, A)), so when
 *    one side of a DH ratchet step or handshake has computed it, the other side is given a
 *    copy. Only for pairs whose public keys this provider made from their secrets: a peer key
 *    from anywhere else is a different string and is computed.
 * Every answer is exactly the provider's, every first answer is computed by it, and nothing
 * random is consumed, so a run's trace is the same with or without this layer.
 */
export function rememberAnswers(base: CryptoProvider): CryptoProvider {
  const remembered = <V>() => {
    const table = new Map<string, V>();
    return {
      get: (k: string) => table.get(k),
      set(k: string, v: V) {
        if (table.size < VERDICT_MEMO_LIMIT) table.set(k, v);
      },
      delete: (k: string) => table.delete(k),
    };
  };
  const keyValid = remembered<boolean>();
  const verdicts = remembered<boolean>();
  const edPublicOf = remembered<Uint8Array>();
  const xPublicOf = remembered<string>();
  const sharedSecrets = remembered<Uint8Array>();

  // Prefixed by the key's and the signature's lengths: no two inputs give the same string.
  const verdictKey = (publicKey: unknown, message: unknown, signature: unknown): string | undefined => {
    const [p, m, s] = [latin1(publicKey), latin1(message), latin1(signature)];
    if (p === undefined || m === undefined || s === undefined || m.length > VERIFY_MEMO_MESSAGE_BYTES) return undefined;
    return `${p.length}:${s.length}:${p}${s}${m}`;
  };
  const noteEd = (pair: KeyPair) => (edPublicOf.set(latin1(pair.secretKey)!, pair.publicKey.slice()), pair);
  const noteX = (pair: KeyPair) => (xPublicOf.set(latin1(pair.secretKey)!, latin1(pair.publicKey)!), pair);

  return withMethods(base, {
    ed25519KeyPair: (seed?: Uint8Array) => noteEd(base.ed25519KeyPair(seed)),
    ed25519PublicKey: (seed: Uint8Array) => noteEd({ secretKey: seed, publicKey: base.ed25519PublicKey(seed) }).publicKey,
    ed25519Sign(seed: Uint8Array, message: Uint8Array) {
      const signature = base.ed25519Sign(seed, message);
      const publicKey = edPublicOf.get(latin1(seed)!);
      const k = publicKey && verdictKey(publicKey, message, signature);
      if (k) verdicts.set(k, true);
      return signature;
    },
    ed25519Verify(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) {
      const k = verdictKey(publicKey, message, signature);
      if (k === undefined) return base.ed25519Verify(publicKey, message, signature);
      let v = verdicts.get(k);
      if (v === undefined) verdicts.set(k, (v = base.ed25519Verify(publicKey, message, signature)));
      return v;
    },
    ed25519IsValidPublicKey(publicKey: Uint8Array) {
      const k = latin1(publicKey);
      if (k === undefined) return base.ed25519IsValidPublicKey(publicKey);
      let v = keyValid.get(k);
      if (v === undefined) keyValid.set(k, (v = base.ed25519IsValidPublicKey(publicKey)));
      return v;
    },

    x25519KeyPair: (secretKey?: Uint8Array) => noteX(base.x25519KeyPair(secretKey)),
    x25519PublicKey: (secretKey: Uint8Array) => noteX({ secretKey, publicKey: base.x25519PublicKey(secretKey) }).publicKey,
    x25519(secretKey: Uint8Array, publicKey: Uint8Array) {
      const ours = xPublicOf.get(latin1(secretKey) ?? '');
      const theirs = latin1(publicKey);
      if (ours === undefined || theirs === undefined) return base.x25519(secretKey, publicKey);
      const k = ours < theirs ? ours + theirs : theirs + ours;
      const known = sharedSecrets.get(k);
      if (known !== undefined) {
        sharedSecrets.delete(k); // each side asks once: the table holds only unanswered halves
        return known;
      }
      const shared = base.x25519(secretKey, publicKey); // a low-order key throws: nothing kept
      sharedSecrets.set(k, shared.slice()); // the caller wipes its copy once used
      return shared;
    },
  });
}
