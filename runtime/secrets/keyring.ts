import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { bytesEqual, concatBytes, toHex, utf8 } from '../encoding/bytes.ts';
import { EncodingError } from '../errors.ts';
import { SecretsError } from './errors.ts';

/** A key-encryption key: 32 random bytes and a short public id that wrapped records name. */
export interface Kek {
  id: string;
  key: Uint8Array;
}

export const KEK_BYTES = 32;
/** KEK ids travel inside every wrapped record: short, printable, no separators. */
export const KEK_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
/** More live KEKs than this means rotations are not being finished; refuse rather than grow. */
export const MAX_LIVE_KEKS = 16;

const KEK_ID_DOMAIN = utf8('talos/v1/kek-id');

/** The id given to a KEK listed without one: a fingerprint, so the same key always gets the same id. */
export function deriveKekId(crypto: CryptoProvider, key: Uint8Array): string {
  return 'k' + toHex(crypto.sha256(concatBytes(KEK_ID_DOMAIN, new Uint8Array([0]), key)).subarray(0, 8));
}

function checkKek(kek: Kek): void {
  if (typeof kek.id !== 'string' || !KEK_ID_PATTERN.test(kek.id)) {
    throw new SecretsError('kek_malformed', 'KEK id must match ' + KEK_ID_PATTERN.source);
  }
  if (!(kek.key instanceof Uint8Array) || kek.key.length !== KEK_BYTES) {
    throw new SecretsError('kek_malformed', `KEK ${kek.id} must be ${KEK_BYTES} bytes`);
  }
}

/**
 * The live set of KEKs: several at once (old ones stay readable during a rotation), exactly
 * one primary (wraps every new data key). Mutable on purpose: a rotation changes the ring under
 * running readers, which must never see a moment where a record's KEK is missing.
 */
export class Keyring {
  readonly #keys = new Map<string, Uint8Array>();
  #primary: string;
  /**
   * KEKs that were this ring's primary and no longer are: the only ones a rotation retires. A
   * KEK learned as non-primary may be staged for a coming rotation (SPEC 10, step 1), so it is
   * never retired until it has served as the primary.
   */
  readonly #formerPrimaries = new Set<string>();

  constructor(keks: readonly Kek[], primaryId?: string) {
    if (keks.length === 0) throw new SecretsError('kek_malformed', 'a keyring needs at least one KEK');
    if (keks.length > MAX_LIVE_KEKS) throw new SecretsError('kek_malformed', `at most ${MAX_LIVE_KEKS} live KEKs`);
    for (const kek of keks) checkKek(kek);
    const primary = primaryId ?? keks[0]!.id;
    const staged = new Map<string, Uint8Array>();
    for (const kek of keks) {
      const existing = staged.get(kek.id);
      if (existing && !bytesEqual(existing, kek.key)) {
        throw new SecretsError('kek_duplicate', `KEK id ${kek.id} is listed twice with different keys`);
      }
      staged.set(kek.id, Uint8Array.from(kek.key)); // own copy: retire() wipes it
    }
    if (!staged.has(primary)) throw new SecretsError('kek_unknown', `primary KEK ${primary} is not on the ring`);
    for (const [id, key] of staged) this.#keys.set(id, key);
    this.#primary = primary;
  }

  get primaryId(): string {
    return this.#primary;
  }

  ids(): string[] {
    return [...this.#keys.keys()];
  }

  has(id: string): boolean {
    return this.#keys.has(id);
  }

  /** The key bytes of `id`; throws kek_unknown when it is not live. */
  key(id: string): Uint8Array {
    const key = this.#keys.get(id);
    if (!key) throw new SecretsError('kek_unknown', `KEK ${id} is not on the keyring`);
    return key;
  }

  /** Adds a KEK (idempotent for the same id and bytes); `primary` makes it wrap new records. */
  add(kek: Kek, options: { primary?: boolean } = {}): void {
    checkKek(kek);
    const existing = this.#keys.get(kek.id);
    if (existing) {
      if (!bytesEqual(existing, kek.key)) throw new SecretsError('kek_duplicate', `KEK id ${kek.id} already holds another key`);
    } else {
      if (this.#keys.size >= MAX_LIVE_KEKS) throw new SecretsError('kek_malformed', `at most ${MAX_LIVE_KEKS} live KEKs`);
      this.#keys.set(kek.id, Uint8Array.from(kek.key));
    }
    if (options.primary) this.#switchPrimary(kek.id);
  }

  setPrimary(id: string): void {
    this.key(id);
    this.#switchPrimary(id);
  }

  #switchPrimary(id: string): void {
    if (id === this.#primary) return;
    this.#formerPrimaries.add(this.#primary);
    this.#formerPrimaries.delete(id);
    this.#primary = id;
  }

  /** KEKs that served as the primary and have been replaced (see #formerPrimaries). */
  formerPrimaries(): string[] {
    return [...this.#formerPrimaries];
  }

  /** Removes a KEK and wipes its bytes. Callers check first that no record still needs it. */
  retire(id: string): void {
    if (id === this.#primary) throw new SecretsError('kek_is_primary', `KEK ${id} is the primary and cannot be retired`);
    const key = this.key(id);
    key.fill(0);
    this.#keys.delete(id);
    this.#formerPrimaries.delete(id);
  }
}

/**
 * Parses the TALOS_KEK form: a comma-separated list of `id:KEY` or `KEY` entries, KEY being
 * base64url (no padding) of 32 bytes. The first entry is the primary. An entry without an id
 * gets `deriveKekId(key)`. Whitespace around entries is ignored.
 */
export function parseKekList(crypto: CryptoProvider, text: string): Keyring {
  const entries = text
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  if (entries.length === 0) throw new SecretsError('kek_malformed', 'the KEK list is empty');
  const keks = entries.map((entry, index): Kek => {
    const colon = entry.indexOf(':');
    const idPart = colon >= 0 ? entry.slice(0, colon) : undefined;
    const keyPart = colon >= 0 ? entry.slice(colon + 1) : entry;
    let key: Uint8Array;
    try {
      key = fromB64u(keyPart, KEK_BYTES);
    } catch (err) {
      if (err instanceof EncodingError) {
        throw new SecretsError('kek_malformed', `KEK entry ${index + 1} is not base64url of ${KEK_BYTES} bytes`);
      }
      throw err;
    }
    return { id: idPart ?? deriveKekId(crypto, key), key };
  });
  return new Keyring(keks, keks[0]!.id);
}

/** Formats a KEK list the way parseKekList reads it (primary first). Output is secret. */
export function formatKekList(keyring: Keyring): string {
  const ids = [keyring.primaryId, ...keyring.ids().filter((id) => id !== keyring.primaryId)];
  return ids.map((id) => `${id}:${toB64u(keyring.key(id))}`).join(',');
}

/** A fresh random KEK. */
export function generateKek(crypto: CryptoProvider, id?: string): Kek {
  const key = crypto.randomBytes(KEK_BYTES);
  return { id: id ?? deriveKekId(crypto, key), key };
}
