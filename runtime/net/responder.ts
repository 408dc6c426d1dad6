import type { CryptoProvider } from '../crypto/provider.ts';
import { fromUtf8 } from '../encoding/bytes.ts';
import { createOneTimePrekeys, createPrekeyBundle, type Identity, type OneTimePrekey, type PrekeyBundle } from '../identity/index.ts';
import { MAX_STORED_SIGNED_PREKEYS } from '../identity/prekey-store.ts';
import { IdentityError } from '../errors.ts';
import { acceptFirstMessage, type Envelope } from '../session/index.ts';
import type { KeyAgreement } from '../session/responder.ts';
import type { HandshakeStore, PrekeySecretsWriter } from '../session/ports.ts';
import { SessionChannel } from './channel.ts';

/**
 * The gateway's side of the handshake: it publishes a signed prekey bundle (PQXDH: with an
 * ML-KEM-768 last-resort key) and hands out one one-time prekey per offer, then accepts first
 * messages through runtime/session's acceptFirstMessage against the session store (which
 * deletes the used one-time prekey and records the EK in one transaction: replays refused).
 */

/** One-time prekeys generated per batch; a new batch is made when the handed-out pool runs dry. */
export const ONE_TIME_PREKEY_BATCH = 100;
/**
 * One-time prekeys handed out but not yet used, at most. Offers are unauthenticated, so beyond
 * this the gateway stops minting new ones and offers the bundle alone (the handshake stays
 * PQXDH with the signed prekeys; it only loses the one-time key's extra forward secrecy).
 */
export const MAX_OUTSTANDING_ONE_TIME_PREKEYS = 10_000;
/** A published bundle is valid this long; the gateway makes a new one before it expires. */
export const BUNDLE_LIFETIME_MS = 7 * 24 * 60 * 60 * 1000;
/** Bundles are renewed this long before they expire. */
export const BUNDLE_RENEW_MARGIN_MS = 24 * 60 * 60 * 1000;
/** First ML-KEM id (the last-resort keys) – kept apart from signed prekey ids. */
const PQ_ID_BASE = 1_000_000;

export interface Offer {
  bundle: PrekeyBundle;
  opk?: OneTimePrekey;
}

export type ResponderStore = HandshakeStore &
  Pick<PrekeySecretsWriter, 'putSignedPrekey' | 'putOneTimePrekeys' | 'deleteSignedPrekey' | 'deleteOldestOneTimePrekeys'>;

export class GatewayResponder {
  private bundle: PrekeyBundle | undefined;
  private spkId = 0;
  private nextOpkId = 1;
  private pool: OneTimePrekey[] = [];
  private outstanding = 0;

  constructor(
    readonly crypto: CryptoProvider,
    readonly identity: Identity,
    private readonly store: ResponderStore,
    private readonly options: { pq?: boolean; now?: () => number; lastIds?: { spk: number; opk: number }; keyAgreement?: KeyAgreement } = {},
  ) {
    // A responder restarted over a persisted store continues its id sequences (no id reused).
    if (options.lastIds) {
      this.spkId = options.lastIds.spk;
      this.nextOpkId = options.lastIds.opk + 1;
    }
  }

  get did(): string {
    return this.identity.did;
  }

  private now(): number {
    return (this.options.now ?? Date.now)();
  }

  private async newBundle(now: number): Promise<PrekeyBundle> {
    this.spkId++;
    const { bundle, secrets } = createPrekeyBundle(this.crypto, this.identity, {
      spkId: this.spkId,
      exp: now + BUNDLE_LIFETIME_MS,
      withPq: this.options.pq ?? true,
      pqspkId: PQ_ID_BASE + this.spkId,
    });
    // The store holds MAX_STORED_SIGNED_PREKEYS (SPEC 4.6): the key that many rotations old is
    // retired first. At the daily rotation that is 16 days, past any bundle's 7-day lifetime.
    const retired = this.spkId - MAX_STORED_SIGNED_PREKEYS;
    if (retired > 0) await this.store.deleteSignedPrekey(retired);
    await this.store.putSignedPrekey(secrets);
    this.bundle = bundle;
    return bundle;
  }

  /**
   * The scheduled signed-prekey rotation (TGA job): a new signed prekey now; the 15 before it
   * stay in the store for handshakes already under way. Returns the new id.
   */
  async rotateSignedPrekey(): Promise<number> {
    await this.newBundle(this.now());
    return this.spkId;
  }

  /**
   * The scheduled one-time prekey replenishment (TGA job): tops the pool up with one batch when
   * fewer than half a batch are left, within the outstanding bound. Returns how many were made.
   */
  async replenishOneTimePrekeys(): Promise<number> {
    if (this.pool.length >= ONE_TIME_PREKEY_BATCH / 2) return 0;
    if (this.outstanding + this.pool.length + ONE_TIME_PREKEY_BATCH > MAX_OUTSTANDING_ONE_TIME_PREKEYS) return 0;
    const prekeys = await this.mintOneTimePrekeys();
    this.pool = [...prekeys, ...this.pool];
    return prekeys.length;
  }

  /**
   * Makes and stores a batch of one-time prekeys. A store at its bound (SPEC 4.6: unused keys
   * pile up across restarts, as a restarted responder cannot tell which it had handed out)
   * first retires its oldest batch, the keys an initiator is least likely still to hold.
   */
  private async mintOneTimePrekeys(): Promise<OneTimePrekey[]> {
    const { prekeys, secrets } = createOneTimePrekeys(this.crypto, { startId: this.nextOpkId, count: ONE_TIME_PREKEY_BATCH });
    this.nextOpkId += ONE_TIME_PREKEY_BATCH;
    try {
      await this.store.putOneTimePrekeys(secrets);
    } catch (err) {
      if (!(err instanceof IdentityError && err.code === 'prekey_store_full')) throw err;
      await this.store.deleteOldestOneTimePrekeys(ONE_TIME_PREKEY_BATCH);
      await this.store.putOneTimePrekeys(secrets);
    }
    return prekeys;
  }

  /** The bundle plus a fresh one-time prekey (each handed out once). */
  async offer(): Promise<Offer> {
    const now = this.now();
    if (!this.bundle || this.bundle.exp - BUNDLE_RENEW_MARGIN_MS <= now) await this.newBundle(now);
    if (this.pool.length === 0) {
      if (this.outstanding + ONE_TIME_PREKEY_BATCH > MAX_OUTSTANDING_ONE_TIME_PREKEYS) return { bundle: this.bundle! };
      this.pool = await this.mintOneTimePrekeys();
    }
    const opk = this.pool.pop()!;
    this.outstanding++;
    return { bundle: this.bundle!, opk };
  }

  /** Accepts a first (prekey) frame: the new channel and the first message's text. */
  async accept(envelope: Envelope): Promise<{ channel: SessionChannel; text: string }> {
    const accepted = await acceptFirstMessage(this.crypto, this.identity, envelope, this.store, this.now(), this.options.keyAgreement);
    if (accepted.consumed.opkId !== undefined) this.outstanding = Math.max(0, this.outstanding - 1);
    return { channel: new SessionChannel(this.crypto, accepted.session), text: fromUtf8(accepted.plaintext) };
  }
}
