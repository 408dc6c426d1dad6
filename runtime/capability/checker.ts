import type { CryptoProvider } from '../crypto/provider.ts';
import { normalizeDid } from '../identity/did.ts';
import { BoundedLru } from './cache.ts';
import { CapabilityError, type RefusalCode } from './errors.ts';
import { indexGrants, matchRequest, type AccessRequest, type Grant, type GrantIndex } from './grant.ts';
import { verifyRevocation, type RevocationSource } from './revocation.ts';
import { decodeCompactJson, encodeToken, type Token } from './token.ts';
import { verifyChainStatic, type SignatureVerdict } from './verify.ts';

/**
 * The checker the gateway calls on every request:
 *   check(token, request, sessionDid, nowMs)
 * The first check of a token verifies its whole chain; the verdict (refusals included) is
 * cached. The cache is bucketed by a cheap fingerprint of the compact string (sampled
 * characters, weighted to the tail where the leaf signature lies) and every hit is confirmed
 * by comparing the WHOLE compact string, so a token that merely shares an id, a signature or a
 * fingerprint with a verified one can never use its entry. (Keying a Map by the compact
 * string itself would make V8 hash all ~4 KB of every freshly parsed token: ~4 µs a call.) Cached entries keep the chain's
 * ids, issuers, nbf/exp and precompiled grant matchers, so subject, audience, time and
 * revocation are still checked on every call, in the order of PROTOCOL.md section 7.
 * Never throws on the request path: refusals are values.
 * A cache miss can also be filled ahead of the check with the Ed25519 work done on another
 * thread: isCached + admitVerified (workers/pooled-authorizer.ts).
 */
export type CheckResult =
  | { ok: true; tokenId: string; grant: Grant }
  | { ok: false; code: RefusalCode; message: string; arg?: string };

export interface CheckerOptions {
  crypto: CryptoProvider;
  /** This gateway's DID: tokens must name it in `aud`. */
  audience: string;
  /** Root issuers this gateway trusts (did:talos form). */
  trustedRoots: Iterable<string>;
  /** Verified tokens kept (default DEFAULT_CACHE_SIZE). */
  cacheSize?: number;
  revocations?: RevocationSource;
}

export const DEFAULT_CACHE_SIZE = 4096;
/** Refusals kept: one for every this many verified tokens kept. */
export const REFUSED_CACHE_FRACTION = 4;
const DID_KEY_PREFIX = 'did:key:';
const DID_TALOS_PREFIX = 'did:talos:';

export interface CheckerStats {
  cacheHits: number;
  cacheMisses: number;
  revocationsApplied: number;
  revocationsIgnored: number;
}

interface Entry {
  /** the exact compact token this entry was verified for */
  compact: string;
  refusal: CheckResult | null;
  sub: string;
  audienceOk: boolean;
  nbfMs: number;
  expMs: number;
  ids: string[];
  issuers: string[];
  index: GrantIndex | null;
  /** one preallocated success result per grant, by grant position */
  okResults: CheckResult[];
  /** revocation epoch at which the chain was last found unrevoked */
  revEpoch: number;
  revoked: boolean;
}

const refusal = (code: RefusalCode, message: string): CheckResult => Object.freeze({ ok: false, code, message });
const WRONG_SUBJECT = refusal('wrong_subject', 'the token was not issued to the agent authenticated by this session');
const WRONG_AUDIENCE = refusal('wrong_audience', 'the token is not addressed to this gateway');
const NOT_YET_VALID = refusal('not_yet_valid', 'the token is not valid yet');
const EXPIRED = refusal('expired', 'the token has expired');
const REVOKED = refusal('revoked', 'a token in the chain has been revoked');
const NO_MATCHING_GRANT = refusal('no_matching_grant', 'no grant covers this method and tool');
const REFUSED_WRONG_SUBJECT = Object.freeze({ refusal: WRONG_SUBJECT });
const REFUSED_WRONG_AUDIENCE = Object.freeze({ refusal: WRONG_AUDIENCE });
const REFUSED_NOT_YET_VALID = Object.freeze({ refusal: NOT_YET_VALID });
const REFUSED_EXPIRED = Object.freeze({ refusal: EXPIRED });
const REFUSED_REVOKED = Object.freeze({ refusal: REVOKED });

/** Samples of the compact string hashed into the bucket key. */
const FINGERPRINT_SPREAD_SAMPLES = 16;
const FINGERPRINT_TAIL = 256;
const FINGERPRINT_TAIL_STEP = 16;

/**
 * A 30-bit fingerprint of a compact token: its length, 16 characters spread over the whole
 * string and 16 from its last 256 characters (in JCS order the leaf's `sig` is followed only
 * by `sub` and `v`, so the random signature lands there). It only chooses a bucket.
 */
export function fingerprint(s: string): number {
  const n = s.length;
  let h = n ^ 0x811c9dc5;
  const step = Math.max(1, Math.floor(n / FINGERPRINT_SPREAD_SAMPLES));
  for (let i = 0; i < n; i += step) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  for (let i = n > FINGERPRINT_TAIL ? n - FINGERPRINT_TAIL : 0; i < n; i += FINGERPRINT_TAIL_STEP) {
    h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  }
  return h & 0x3fffffff; // stays a small integer: cheap Map key
}

export class CapabilityChecker {
  readonly #crypto: CryptoProvider;
  readonly #audience: string;
  readonly #roots: ReadonlySet<string>;
  readonly #cache: BoundedLru<number, Entry>;
  /**
   * Refusals, kept apart: a peer can make them at will (a malformed string costs it nothing),
   * so they must never push a verified token out of #cache and cost its chain a re-verification.
   */
  readonly #refused: BoundedLru<number, Entry>;
  /** token id -> issuers that revoked it (a revocation binds only chains where its issuer sits at or above the token) */
  readonly #revoked = new Map<string, Set<string>>();
  #epoch = 0;
  #unsubscribe: (() => void) | undefined;
  readonly stats: CheckerStats = { cacheHits: 0, cacheMisses: 0, revocationsApplied: 0, revocationsIgnored: 0 };

  constructor(o: CheckerOptions) {
    this.#crypto = o.crypto;
    // Configuration may spell DIDs as did:key; tokens carry the normalized did:talos form.
    this.#audience = normalizeDid(o.audience);
    this.#roots = new Set([...o.trustedRoots].map((d) => normalizeDid(d)));
    this.#cache = new BoundedLru(o.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.#refused = new BoundedLru(Math.max(1, Math.ceil((o.cacheSize ?? DEFAULT_CACHE_SIZE) / REFUSED_CACHE_FRACTION)));
    if (o.revocations) this.#unsubscribe = o.revocations.subscribe((r) => this.applyRevocation(r));
  }

  /**
   * Authorizes one request. `token` is the compact form (the fast path) or a token object
   * (canonicalized on each call to find its cache entry). `sessionDid` is the did:talos DID
   * the session authenticated; `nowMs` the gateway clock in milliseconds.
   */
  check(token: string | Token, request: AccessRequest, sessionDid: string, nowMs: number): CheckResult {
    const admitted = this.#admit(token, sessionDid, nowMs);
    if (admitted.refusal !== null) return admitted.refusal;
    const e = admitted as Entry;
    // A caller's bad request (not an object) matches nothing rather than throwing.
    const m = request !== null && typeof request === 'object' ? matchRequest(e.index!, request) : null;
    if (typeof m === 'number') return e.okResults[m]!;
    if (m === null) return NO_MATCHING_GRANT;
    return { ok: false, code: 'arg_violation', message: `argument ${JSON.stringify(m)} is outside the grant`, arg: m };
  }

  /**
   * Every check that does not depend on a request (chain, trust, subject, audience, time,
   * revocation): for tools such as `talos token inspect`, or to vet a token once up front.
   */
  verifyToken(token: string | Token, sessionDid: string, nowMs: number): { ok: true; tokenId: string } | Extract<CheckResult, { ok: false }> {
    const admitted = this.#admit(token, sessionDid, nowMs);
    if (admitted.refusal !== null) return admitted.refusal as Extract<CheckResult, { ok: false }>;
    const ids = (admitted as Entry).ids;
    return { ok: true, tokenId: ids[ids.length - 1]! };
  }

  /** The cache entry when the token passes every request-independent check, else a refusal holder. */
  #admit(token: string | Token, sessionDid: string, nowMs: number): Entry | { refusal: CheckResult } {
    let key: string;
    if (typeof token === 'string') key = token;
    else {
      try {
        key = encodeToken(token);
      } catch {
        return { refusal: refusal('malformed', 'the token object cannot be canonicalized') };
      }
    }
    const fp = fingerprint(key);
    let e = this.#lookup(fp, key);
    if (e !== undefined) this.stats.cacheHits++;
    else e = this.#fill(fp, key, undefined);
    if (e.refusal !== null) return e;
    if (typeof sessionDid !== 'string') return REFUSED_WRONG_SUBJECT;
    // DIDs compare by key: did:key:z… names the same key as did:talos:z… (same identifier).
    if (e.sub !== sessionDid && !(sessionDid.startsWith(DID_KEY_PREFIX) && e.sub === DID_TALOS_PREFIX + sessionDid.slice(DID_KEY_PREFIX.length))) {
      return REFUSED_WRONG_SUBJECT;
    }
    if (!e.audienceOk) return REFUSED_WRONG_AUDIENCE;
    // Written so that a NaN clock refuses instead of passing both comparisons.
    if (!(nowMs >= e.nbfMs)) return REFUSED_NOT_YET_VALID;
    if (!(nowMs < e.expMs)) return REFUSED_EXPIRED;
    if (e.revEpoch !== this.#epoch) {
      if (e.revoked || this.#chainRevoked(e)) {
        e.revoked = true;
        return REFUSED_REVOKED;
      }
      e.revEpoch = this.#epoch;
    }
    return e;
  }

  /**
   * True when the next check of this compact token finds its verdict (allow or refusal) in the
   * cache and verifies nothing: the same bucket look-up and whole-string compare as check.
   */
  isCached(compact: string): boolean {
    return this.#lookup(fingerprint(compact), compact) !== undefined;
  }

  /** The cached verdict of exactly this compact string (a bucket holds one token per cache). */
  #lookup(fp: number, compact: string): Entry | undefined {
    const verified = this.#cache.get(fp);
    if (verified !== undefined && verified.compact === compact) return verified;
    const refused = this.#refused.get(fp);
    return refused !== undefined && refused.compact === compact ? refused : undefined;
  }

  /**
   * Caches the verdict of a token whose signature stage ran elsewhere: `signatures` must be
   * signatureVerdict(compact) for this very string (computed by a worker of the pool). Every
   * other stage (parse, structure, depth, delegation, attenuation, trusted root, grant index)
   * runs here exactly as on a cache miss of check, in the same order, and the verdict (a
   * refusal too) is cached under the same rules; so only the Ed25519 work moves.
   */
  admitVerified(compact: string, signatures: SignatureVerdict): void {
    const fp = fingerprint(compact);
    if (this.#lookup(fp, compact) === undefined) this.#fill(fp, compact, signatures);
  }

  /**
   * A cache miss: verifies the token and caches the verdict. A verified token goes to #cache and
   * a refusal to #refused, so forged look-alikes and floods of garbage can neither hit nor evict
   * a verified entry.
   */
  #fill(fp: number, compact: string, signatures: SignatureVerdict | undefined): Entry {
    this.stats.cacheMisses++;
    const fresh = this.#verify(compact, signatures);
    (fresh.refusal === null ? this.#cache : this.#refused).set(fp, fresh);
    return fresh;
  }

  #verify(compact: string, signatures: SignatureVerdict | undefined): Entry {
    const failed = (r: CheckResult): Entry => ({
      compact,
      refusal: r, sub: '', audienceOk: false, nbfMs: 0, expMs: 0, ids: [], issuers: [], index: null, okResults: [], revEpoch: -1, revoked: false,
    });
    let decoded: { value: unknown; text: string };
    try {
      decoded = decodeCompactJson(compact);
    } catch (err) {
      if (err instanceof CapabilityError) return failed(refusal(err.code as RefusalCode, err.message));
      return failed(refusal('malformed', 'the token cannot be parsed'));
    }
    const r = verifyChainStatic(this.#crypto, decoded.value, this.#roots, { receivedText: decoded.text, signatures });
    if (!r.ok) return failed(refusal(r.code, r.message));
    const chain = r.chain;
    const token = chain[chain.length - 1]!;
    return {
      compact,
      refusal: null,
      sub: token.sub,
      audienceOk: token.aud === this.#audience,
      nbfMs: token.nbf * 1000,
      expMs: token.exp * 1000,
      ids: chain.map((t) => t.id),
      issuers: chain.map((t) => t.iss),
      index: indexGrants(token.grants),
      okResults: token.grants.map((grant) => Object.freeze({ ok: true as const, tokenId: token.id, grant })),
      revEpoch: -1,
      revoked: false,
    };
  }

  #chainRevoked(e: Entry): boolean {
    for (let i = 0; i < e.ids.length; i++) {
      const by = this.#revoked.get(e.ids[i]!);
      if (by === undefined) continue;
      // Only the token's own issuer or an issuer above it (closer to the root) can revoke it.
      for (let j = 0; j <= i; j++) if (by.has(e.issuers[j]!)) return true;
    }
    return false;
  }

  /**
   * Applies one revocation (as delivered by a RevocationSource, unverified). Returns true when
   * it is new and valid; invalid ones are ignored and counted. Takes effect on the next check.
   */
  applyRevocation(raw: unknown): boolean {
    const r = raw as { token_id?: unknown; iss?: unknown } | null;
    if (r && typeof r.token_id === 'string' && typeof r.iss === 'string' && this.#revoked.get(r.token_id)?.has(r.iss)) {
      return false; // already known (sources re-deliver everything after a reconnect)
    }
    if (!verifyRevocation(this.#crypto, raw)) {
      this.stats.revocationsIgnored++;
      return false;
    }
    let by = this.#revoked.get(raw.token_id);
    if (by === undefined) this.#revoked.set(raw.token_id, (by = new Set()));
    by.add(raw.iss);
    this.#epoch++; // every cached chain re-checks revocation on its next use
    this.stats.revocationsApplied++;
    return true;
  }

  /** True when the token id has been revoked by `byIssuer` (or by anyone, when omitted). */
  isRevoked(tokenId: string, byIssuer?: string): boolean {
    const by = this.#revoked.get(tokenId);
    return by !== undefined && (byIssuer === undefined ? by.size > 0 : by.has(byIssuer));
  }

  get cacheSize(): number {
    return this.#cache.size;
  }

  /** Stops listening to the revocation source. */
  close(): void {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
  }
}
