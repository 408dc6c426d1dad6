import { IdentityError } from '../errors.ts';
import type { MlKemPrekeySecret, SignedPrekeySecrets, X25519PrekeySecret } from './prekeys.ts';

/**
 * The responder's secret halves of what it published: signed prekeys (kept until rotated out,
 * looked up by spk id), and one-time prekeys, each handed out at most once: `take…` deletes
 * the key as it returns it (PROTOCOL.md section 5: delete a used one-time prekey before
 * answering). Every method either completes or changes nothing.
 */
export interface PrekeyStore {
  /** Adds a signed prekey (and its ML-KEM last-resort key); a reused id is refused. */
  putSignedPrekey(secrets: SignedPrekeySecrets): void;
  getSignedPrekey(spkId: number): SignedPrekeySecrets | undefined;
  /** Forgets a retired signed prekey. */
  deleteSignedPrekey(spkId: number): boolean;
  putOneTimePrekeys(secrets: readonly X25519PrekeySecret[]): void;
  takeOneTimePrekey(id: number): X25519PrekeySecret | undefined;
  putPqOneTimePrekeys(secrets: readonly MlKemPrekeySecret[]): void;
  takePqOneTimePrekey(id: number): MlKemPrekeySecret | undefined;
  counts(): { signed: number; oneTime: number; pqOneTime: number };
}

/** Bounds what one store holds (TigerBeetle habit: a limit on everything). */
export const MAX_STORED_ONE_TIME_PREKEYS = 10_000;
export const MAX_STORED_SIGNED_PREKEYS = 16;

function putAll<T extends { id: number }>(map: Map<number, T>, items: readonly T[], limit: number, what: string): void {
  const ids = new Set<number>();
  for (const item of items) {
    if (map.has(item.id) || ids.has(item.id)) throw new IdentityError('prekey_duplicate_id', `${what} id ${item.id} is already stored`);
    ids.add(item.id);
  }
  if (map.size + items.length > limit) throw new IdentityError('prekey_store_full', `at most ${limit} ${what}s are stored`);
  for (const item of items) map.set(item.id, item);
}

function take<T>(map: Map<number, T>, id: number): T | undefined {
  const value = map.get(id);
  map.delete(id);
  return value;
}

/** An in-memory PrekeyStore (persistence belongs to whoever wraps it). */
export function createMemoryPrekeyStore(): PrekeyStore {
  const signed = new Map<number, SignedPrekeySecrets>();
  const oneTime = new Map<number, X25519PrekeySecret>();
  const pqOneTime = new Map<number, MlKemPrekeySecret>();
  return {
    putSignedPrekey(secrets) {
      if (signed.has(secrets.spk.id)) throw new IdentityError('prekey_duplicate_id', `signed prekey id ${secrets.spk.id} is already stored`);
      if (signed.size >= MAX_STORED_SIGNED_PREKEYS) {
        throw new IdentityError('prekey_store_full', `at most ${MAX_STORED_SIGNED_PREKEYS} signed prekeys are stored`);
      }
      signed.set(secrets.spk.id, secrets);
    },
    getSignedPrekey: (id) => signed.get(id),
    deleteSignedPrekey: (id) => signed.delete(id),
    putOneTimePrekeys: (items) => putAll(oneTime, items, MAX_STORED_ONE_TIME_PREKEYS, 'one-time prekey'),
    takeOneTimePrekey: (id) => take(oneTime, id),
    putPqOneTimePrekeys: (items) => putAll(pqOneTime, items, MAX_STORED_ONE_TIME_PREKEYS, 'one-time ML-KEM prekey'),
    takePqOneTimePrekey: (id) => take(pqOneTime, id),
    counts: () => ({ signed: signed.size, oneTime: oneTime.size, pqOneTime: pqOneTime.size }),
  };
}
