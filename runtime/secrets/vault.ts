import type { CryptoProvider } from '../crypto/provider.ts';
import { SecretsError } from './errors.ts';
import type { Kek, Keyring } from './keyring.ts';
import { SecretBox, checkRef, type SecretRef, type WrappedSecret } from './secret-box.ts';
import { sameWrapped, type SecretStore } from './store.ts';

/** Records re-wrapped per batch; the rotation yields to other work between batches. */
export const REWRAP_BATCH_SIZE = 256;

export interface RewrapStats {
  /** Records whose DEK was re-wrapped under the primary. */
  rewrapped: number;
  /** Records written by someone else meanwhile (already under the primary): left as they are. */
  raced: number;
  /** Records that could not be opened (unknown KEK, tampered): left as they are, named here. */
  failed: SecretRef[];
}

export interface RotationResult extends RewrapStats {
  primary: string;
  retired: string[];
}

/**
 * Opened secrets kept in memory for repeated reads (the gateway reads the upstream credential
 * on every call): at most OPENED_LIMIT records, each of at most OPENED_MAX_BYTES (credentials,
 * not bulk data), the oldest dropped and wiped first.
 */
export const OPENED_LIMIT = 64;
export const OPENED_MAX_BYTES = 4096;

interface Opened {
  wrapped: WrappedSecret;
  plaintext: Uint8Array;
}

const openedKey = (ref: SecretRef) => `${ref.purpose}\n${ref.id}`;
const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Stored secrets with envelope encryption and zero-downtime KEK rotation.
 *
 * Rotation keeps every read working: the new KEK is added as primary while the old ones stay on
 * the ring, records are re-wrapped in the background (compare-and-swap, so a concurrent write
 * is never overwritten), and an old KEK is retired (wiped) only once no record names it.
 * With several processes sharing a store, give every process the new KEK (non-primary) first,
 * then switch the primary, then re-wrap, then retire: see contracts/SPEC.md section 10.
 */
export class SecretVault {
  readonly box: SecretBox;
  /**
   * Keyed by record. An entry answers a read only while the store still holds the very same
   * wrapped record and its KEK is still on the ring, so a write, delete, re-wrap or retirement
   * (by this process or another) is never answered from a stale copy: the store is still read
   * every time; only the two decryptions are saved.
   */
  readonly #opened = new Map<string, Opened>();

  constructor(
    crypto: CryptoProvider,
    readonly keyring: Keyring,
    readonly store: SecretStore,
  ) {
    this.box = new SecretBox(crypto, keyring);
  }

  async put(ref: SecretRef, plaintext: Uint8Array): Promise<void> {
    const wrapped = this.box.seal(ref, plaintext);
    this.#forget(ref);
    await this.store.put(ref, wrapped);
  }

  async get(ref: SecretRef): Promise<Uint8Array | undefined> {
    checkRef(ref);
    const wrapped = await this.store.get(ref);
    const key = openedKey(ref);
    const hit = this.#opened.get(key);
    if (wrapped && hit && sameWrapped(hit.wrapped, wrapped) && this.keyring.has(wrapped.kek)) return hit.plaintext.slice();
    this.#forget(ref);
    if (!wrapped) return undefined;
    const plaintext = this.box.open(ref, wrapped);
    if (plaintext.length <= OPENED_MAX_BYTES) {
      if (this.#opened.size >= OPENED_LIMIT) this.#forget(this.#opened.keys().next().value!);
      this.#opened.set(key, { wrapped: { v: 1, kek: wrapped.kek, dek: wrapped.dek, ct: wrapped.ct }, plaintext: plaintext.slice() });
    }
    return plaintext;
  }

  async delete(ref: SecretRef): Promise<boolean> {
    checkRef(ref);
    this.#forget(ref);
    return this.store.delete(ref);
  }

  /** Drops (and wipes) the opened copy of a record. */
  #forget(ref: SecretRef | string): void {
    const key = typeof ref === 'string' ? ref : openedKey(ref);
    this.#opened.get(key)?.plaintext.fill(0);
    this.#opened.delete(key);
  }

  /** Re-wraps every record not under the primary KEK, batch by batch. Idempotent. */
  async rewrapAll(options: { batchSize?: number } = {}): Promise<RewrapStats> {
    const batchSize = options.batchSize ?? REWRAP_BATCH_SIZE;
    const stats: RewrapStats = { rewrapped: 0, raced: 0, failed: [] };
    const primary = this.keyring.primaryId;
    let after: SecretRef | undefined;
    for (;;) {
      const batch = await this.store.listNotWrappedBy(primary, batchSize, after);
      if (batch.length === 0) return stats;
      for (const record of batch) {
        let next;
        try {
          next = this.box.rewrap(record, record.wrapped);
        } catch (err) {
          if (err instanceof SecretsError) {
            stats.failed.push({ purpose: record.purpose, id: record.id });
            continue;
          }
          throw err;
        }
        if (await this.store.compareAndSwap(record, record.wrapped, next)) stats.rewrapped++;
        else stats.raced++;
      }
      const last = batch[batch.length - 1]!;
      after = { purpose: last.purpose, id: last.id };
      await yieldToEventLoop();
    }
  }

  /**
   * Retires every former primary KEK that no stored record names any more. A KEK still in use
   * is kept (returned in `kept`), never retired; one that has not been the primary yet (staged
   * for a coming rotation) is not considered at all.
   */
  async retireUnused(): Promise<{ retired: string[]; kept: string[] }> {
    const counts = await this.store.countByKek();
    const retired: string[] = [];
    const kept: string[] = [];
    for (const id of this.keyring.formerPrimaries()) {
      if ((counts.get(id) ?? 0) > 0) kept.push(id);
      else {
        this.keyring.retire(id);
        retired.push(id);
      }
    }
    return { retired, kept };
  }

  /** Retires one KEK, refusing (kek_in_use) while records still need it. */
  async retire(id: string): Promise<void> {
    const inUse = (await this.store.countByKek()).get(id) ?? 0;
    if (inUse > 0) throw new SecretsError('kek_in_use', `KEK ${id} still wraps ${inUse} records`);
    this.keyring.retire(id);
  }

  /**
   * The whole rotation in one call: `kek` becomes the primary, every record is re-wrapped, and
   * the KEKs no record needs any more are retired. Safe to re-run (e.g. by a scheduled job
   * after a crash): adding the same KEK again is a no-op.
   */
  async rotate(kek: Kek, options: { batchSize?: number } = {}): Promise<RotationResult> {
    this.keyring.add(kek, { primary: true });
    const stats = await this.rewrapAll(options);
    const { retired } = stats.failed.length === 0 ? await this.retireUnused() : { retired: [] };
    return { ...stats, primary: kek.id, retired };
  }
}
