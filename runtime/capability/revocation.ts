import type { CryptoProvider } from '../crypto/provider.ts';
import { didOfDerivedKey, type Did } from '../identity/did.ts';
import { cachedDidKey, isValidDid } from './did-cache.ts';
import { DOMAINS, signObject, verifyObject } from '../identity/signing.ts';
import { validate } from '../../contracts/validate.ts';
import { SchemaError } from '../errors.ts';
import { CapabilityError } from './errors.ts';
import { isPlainObject } from './grant.ts';

/**
 * Revocations (PROTOCOL.md section 7): `{ v: 1, iss, token_id, ts, sig }` signed under
 * `talos/v1/revocation` by `iss`. It takes effect for a chain only when `iss` issued the
 * revoked token or a token above it (closer to the root) in that chain; that is decided by
 * the checker per chain, so a stranger cannot revoke tokens they are not above. Permanent.
 */
export interface Revocation {
  v: 1;
  iss: Did;
  token_id: string;
  /** when it was issued, ms since the epoch */
  ts: number;
  sig: string;
}

const FIELDS = new Set(['v', 'iss', 'token_id', 'ts', 'sig']);
const ID_B64U = /^[A-Za-z0-9_-]{21}[AQgw]$/;
const SIG_B64U = /^[A-Za-z0-9_-]{85}[AQgw]$/;

export function revocationProblem(r: unknown): string | null {
  try {
    validate('revocation', r); // the contract schema: contracts/schemas/revocation.schema.json
  } catch (err) {
    if (err instanceof SchemaError) return err.message;
    throw err;
  }
  if (!isPlainObject(r)) return 'a revocation must be an object';
  for (const k of Object.keys(r)) if (!FIELDS.has(k)) return `unknown revocation field ${JSON.stringify(k)}`;
  if (r.v !== 1) return 'v must be 1';
  if (!isValidDid(r.iss)) return 'iss must be a did:talos DID';
  if (typeof r.token_id !== 'string' || !ID_B64U.test(r.token_id)) return 'token_id must be base64url of 16 bytes';
  if (!Number.isSafeInteger(r.ts) || (r.ts as number) < 0) return 'ts must be a non-negative integer (ms)';
  if (typeof r.sig !== 'string' || !SIG_B64U.test(r.sig)) return 'sig must be base64url of 64 bytes';
  return null;
}

/** True only for a well-formed revocation whose signature verifies under its `iss`. */
export function verifyRevocation(crypto: CryptoProvider, r: unknown): r is Revocation {
  if (revocationProblem(r) !== null) return false;
  const rev = r as Revocation;
  try {
    return verifyObject(crypto, cachedDidKey(rev.iss)!, DOMAINS.revocation, rev as unknown as Record<string, unknown>);
  } catch {
    return false;
  }
}

export function mintRevocation(crypto: CryptoProvider, issuerKey: Uint8Array, tokenId: string, ts: number): Revocation {
  const iss = didOfDerivedKey(crypto.ed25519PublicKey(issuerKey));
  const r = signObject(crypto, issuerKey, DOMAINS.revocation, { v: 1, iss, token_id: tokenId, ts }) as unknown as Revocation;
  const p = revocationProblem(r);
  if (p) throw new CapabilityError('bad_revocation', p);
  return r;
}

/**
 * The port through which checkers learn revocations. `subscribe` delivers every revocation
 * the source knows (at once, and again in full after a reconnect) and every new one; values
 * are delivered unverified (the checker verifies and counts the ones it ignores).
 */
export interface RevocationSource {
  subscribe(listener: (revocation: unknown) => void): () => void;
  /** Records a revocation durably (as durable as the source is) and spreads it to every subscriber. */
  publish(revocation: Revocation): Promise<void>;
}

/** In-process source: one gateway, or several sharing a process (tests, simulations). */
export class MemoryRevocationSource implements RevocationSource {
  readonly #known: unknown[] = [];
  readonly #listeners = new Set<(r: unknown) => void>();

  subscribe(listener: (revocation: unknown) => void): () => void {
    this.#listeners.add(listener);
    for (const r of this.#known) listener(r);
    return () => this.#listeners.delete(listener);
  }

  async publish(revocation: Revocation): Promise<void> {
    this.#known.push(revocation);
    for (const l of this.#listeners) l(revocation);
  }

  /** Delivers a raw value as if it came over the wire (tests of the ignore path use it). */
  inject(value: unknown): void {
    this.#known.push(value);
    for (const l of this.#listeners) l(value);
  }
}
