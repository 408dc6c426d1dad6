import { withMethods, type CryptoProvider, type KeyPair } from '../runtime/crypto/provider.ts';
import { bytesEqual } from '../runtime/encoding/bytes.ts';

/** Distinct inputs remembered per run at most, per table (a run sees a few hundred keys and signatures). */
export const VERDICT_MEMO_LIMIT = 100_000;
/** Longer signed messages are verified every time, so the memo's size stays bounded (tokens and notes are ~0.5 KiB). */
export const VERIFY_MEMO_MESSAGE_BYTES = 4096;
/**
 * Shared secrets one side has computed and the other has not asked for yet, at most; the
 * oldest is wiped and forgotten first. A run has a few dozen sessions, each with at most one
 * half outstanding at a time; a dropped or replayed frame can leave one unasked.
 */
export const UNANSWERED_HALVES_LIMIT = 64;

/** Answers given again instead of computed, on this thread (for tests and benches). */
export const answersGivenAgain = { verdicts: 0, sharedSecrets: 0 };

// A detached array reads as empty, as the providers read it (Buffer.from would throw on it).
const latin1 = (b: unknown): string | undefined =>
  b instanceof Uint8Array ? (b.byteLength === 0 ? '' : Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1')) : undefined;

/**
 * Public keys of the key pairs the provider made, by secret array, as node.ts's PrivateKeyMemo
 * keeps key objects: an entry lives only as long as the caller's array, and a copy of the
 * secret detects an array wiped or changed in place (the entry is then wiped and dropped).
 * The secrets are never turned into strings.
 */
class PublicKeysOfSecrets {
  readonly #memo = new WeakMap<Uint8Array, { copy: Uint8Array; publicKey: string }>();

  note(pair: KeyPair): KeyPair {
    this.#memo.set(pair.secretKey, { copy: pair.secretKey.slice(), publicKey: latin1(pair.publicKey)! });
    return pair;
  }

  of(secret: unknown): string | undefined {
    if (!(secret instanceof Uint8Array)) return undefined;
    const entry = this.#memo.get(secret);
    if (entry === undefined) return undefined;
    if (bytesEqual(entry.copy, secret)) return entry.publicKey;
    entry.copy.fill(0);
    this.#memo.delete(secret);
    return undefined;
  }
}

/** A string-keyed table of at most VERDICT_MEMO_LIMIT answers; past it, answers are computed every time. */
function answers<V>() {
  const table = new Map<string, V>();
  const know = (k: string, v: V) => {
    if (table.size < VERDICT_MEMO_LIMIT) table.set(k, v);
  };
  const ask = (k: string | undefined, compute: () => V): V => {
    if (k === undefined) return compute();
    let v = table.get(k);
    if (v !== undefined) answersGivenAgain.verdicts++;
    else know(k, (v = compute()));
    return v;
  };
  return { ask, know };
}

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
 *    one side of a DH ratchet step or handshake has computed it, the other side is given it.
 *    Only for secrets of key pairs this provider made: a peer key from anywhere else is a
 *    different string and is computed.
 * Every answer is exactly the provider's, every first answer is computed by it, and nothing
 * random is consumed, so a run's trace is the same with or without this layer.
 */
export function rememberAnswers(base: CryptoProvider): CryptoProvider {
  const keyValid = answers<boolean>();
  const verdicts = answers<boolean>();
  const edPublicOf = new PublicKeysOfSecrets();
  const xPublicOf = new PublicKeysOfSecrets();
  const unanswered = new Map<string, Uint8Array>();

  // Prefixed by the key's and the signature's lengths: no two inputs give the same string.
  const verdictKey = (p: string | undefined, message: unknown, signature: unknown): string | undefined => {
    const [m, s] = [latin1(message), latin1(signature)];
    if (p === undefined || m === undefined || s === undefined || m.length > VERIFY_MEMO_MESSAGE_BYTES) return undefined;
    return `${p.length}:${s.length}:${p}${s}${m}`;
  };

  return withMethods(base, {
    ed25519KeyPair: (seed?: Uint8Array) => edPublicOf.note(base.ed25519KeyPair(seed)),
    ed25519PublicKey: (seed: Uint8Array) => edPublicOf.note({ secretKey: seed, publicKey: base.ed25519PublicKey(seed) }).publicKey,
    ed25519Sign(seed: Uint8Array, message: Uint8Array) {
      const signature = base.ed25519Sign(seed, message);
      const k = verdictKey(edPublicOf.of(seed), message, signature);
      if (k !== undefined) verdicts.know(k, true);
      return signature;
    },
    ed25519Verify: (publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array) =>
      verdicts.ask(verdictKey(latin1(publicKey), message, signature), () => base.ed25519Verify(publicKey, message, signature)),
    ed25519IsValidPublicKey: (publicKey: Uint8Array) => keyValid.ask(latin1(publicKey), () => base.ed25519IsValidPublicKey(publicKey)),

    x25519KeyPair: (secretKey?: Uint8Array) => xPublicOf.note(base.x25519KeyPair(secretKey)),
    x25519PublicKey: (secretKey: Uint8Array) => xPublicOf.note({ secretKey, publicKey: base.x25519PublicKey(secretKey) }).publicKey,
    x25519(secretKey: Uint8Array, publicKey: Uint8Array) {
      const ours = xPublicOf.of(secretKey);
      const theirs = latin1(publicKey);
      if (ours === undefined || theirs === undefined) return base.x25519(secretKey, publicKey);
      const k = ours < theirs ? ours + theirs : theirs + ours;
      const known = unanswered.get(k);
      if (known !== undefined) {
        unanswered.delete(k); // each side asks once: the table holds only unanswered halves
        answersGivenAgain.sharedSecrets++;
        return known;
      }
      const shared = base.x25519(secretKey, publicKey); // a low-order key throws: nothing kept
      if (unanswered.size >= UNANSWERED_HALVES_LIMIT) {
        const [oldest, secret] = unanswered.entries().next().value!;
        secret.fill(0);
        unanswered.delete(oldest);
      }
      unanswered.set(k, shared.slice()); // the caller may wipe its own copy once used
      return shared;
    },
  });
}
