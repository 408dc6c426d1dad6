import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64u } from '../encoding/base64url.ts';
import { cachedDidKey } from './did-cache.ts';
import { DOMAINS } from '../identity/signing.ts';
import { CapabilityError, type RefusalCode } from './errors.ts';
import { grantsAttenuate } from './grant.ts';
import { chainTexts, checkDepth, decodeCompactJson, parseLinks, requireCanonical, type Token } from './token.ts';

/**
 * The token-only part of verification: everything that depends on the token's bytes and the
 * checker's configuration, not on the request, the session or the clock. Its result can be
 * cached under a key that binds the whole token. Checks run stage by stage over the whole
 * chain (root first), in the order of PROTOCOL.md section 7:
 *   malformed, chain_too_deep, bad_signature, delegation_issuer, delegation_audience,
 *   delegation_nbf, delegation_exp, grant_escalation / grant_unknown, untrusted_root.
 */
export type StaticRefusal = { ok: false; code: RefusalCode; message: string };
export type StaticResult = { ok: true; chain: Token[] } | StaticRefusal;

export type PublicKeyOf = (did: string) => Uint8Array;

/**
 * The outcome of the signature stage, found where the Ed25519 work ran (a worker of the pool):
 * -1 when every link's signature verifies, else the index of the first link (root is 0) whose
 * signature fails; SIGNATURES_NOT_REACHED when the token was refused before that stage (it
 * does not parse, or is too deep). A plain number: the cheapest thing to send between threads.
 */
export type SignatureVerdict = number;
export const SIGNATURES_NOT_REACHED = -2;

export interface StaticOptions {
  /** The text the token was received as: it must be exactly the token's JCS form. */
  receivedText?: string;
  publicKeyOf?: PublicKeyOf;
  /**
   * The signature stage as found elsewhere for this very token (signatureVerdict of its
   * compact form). Only the Ed25519 work is skipped: every other stage still runs here, in
   * order. A verdict that does not fit this chain (not reached, out of range) is ignored and
   * the signatures are verified here, so it can never admit what verification would refuse.
   */
  signatures?: SignatureVerdict;
}

const SIGNING_PREFIX = DOMAINS.capability + '\u0000';
const encoder = new TextEncoder();
const didKeyOf: PublicKeyOf = (did) => cachedDidKey(did)!;

type Parsed = { ok: true; chain: Token[]; unsigned: string[] } | StaticRefusal;

/** The stages before signatures: shape (malformed), canonical text, depth (chain_too_deep). */
function parseStage(token: unknown, receivedText: string | undefined): Parsed {
  try {
    const chain = parseLinks(token);
    const texts = receivedText === undefined ? chainTextsOrMalformed(chain) : requireCanonical(chain, receivedText);
    checkDepth(chain);
    return { ok: true, chain, unsigned: texts.unsigned };
  } catch (err) {
    if (err instanceof CapabilityError) return refuse(err.code as RefusalCode, err.message);
    throw err;
  }
}

/** The signature stage: the first link whose signature does not verify, or -1. */
function firstBadSignature(crypto: CryptoProvider, chain: Token[], unsigned: string[], publicKeyOf: PublicKeyOf): number {
  for (let i = 0; i < chain.length; i++) {
    const link = chain[i]!;
    let ok = false;
    try {
      // utf8(DOMAIN) || 0x00 || JCS(link without sig), the signing rule of PROTOCOL.md section 1
      ok = crypto.ed25519Verify(publicKeyOf(link.iss), encoder.encode(SIGNING_PREFIX + unsigned[i]!), fromB64u(link.sig, 64));
    } catch {
      ok = false;
    }
    if (!ok) return i;
  }
  return -1;
}

/**
 * The stages up to and including signatures for a compact token, as received in a request:
 * the Ed25519 work of a cache miss, for a worker thread. The checker's admitVerified takes
 * the verdict and runs every stage but the signatures itself.
 */
export function signatureVerdict(crypto: CryptoProvider, compact: string): SignatureVerdict {
  let decoded: { value: unknown; text: string };
  try {
    decoded = decodeCompactJson(compact);
  } catch (err) {
    if (err instanceof CapabilityError) return SIGNATURES_NOT_REACHED;
    throw err;
  }
  const parsed = parseStage(decoded.value, decoded.text);
  return parsed.ok ? firstBadSignature(crypto, parsed.chain, parsed.unsigned, didKeyOf) : SIGNATURES_NOT_REACHED;
}

export function verifyChainStatic(
  crypto: CryptoProvider,
  token: unknown,
  trustedRoots: ReadonlySet<string>,
  options: StaticOptions = {},
): StaticResult {
  const parsed = parseStage(token, options.receivedText);
  if (!parsed.ok) return parsed;
  const { chain, unsigned } = parsed;
  const given = options.signatures;
  const bad =
    given !== undefined && Number.isInteger(given) && given >= -1 && given < chain.length
      ? given
      : firstBadSignature(crypto, chain, unsigned, options.publicKeyOf ?? didKeyOf);
  if (bad >= 0) return refuse('bad_signature', `${where(bad, chain.length)}: signature does not verify under its issuer's key`);
  const stages: [RefusalCode, (p: Token, c: Token) => boolean, string][] = [
    ['delegation_issuer', (p, c) => c.iss === p.sub, 'its issuer is not the subject of its parent'],
    ['delegation_audience', (p, c) => c.aud === p.aud, 'its audience differs from its parent'],
    ['delegation_nbf', (p, c) => c.nbf >= p.nbf, 'it becomes valid before its parent'],
    ['delegation_exp', (p, c) => c.exp <= p.exp, 'it expires after its parent'],
  ];
  for (const [code, holds, why] of stages) {
    for (let i = 1; i < chain.length; i++) {
      if (!holds(chain[i - 1]!, chain[i]!)) return refuse(code, `${where(i, chain.length)}: ${why}`);
    }
  }
  for (let i = 1; i < chain.length; i++) {
    const bad = grantsAttenuate(chain[i - 1]!.grants, chain[i]!.grants);
    if (bad) {
      const how = bad.code === 'grant_unknown' ? 'cannot be shown to lie' : 'does not lie';
      return refuse(bad.code, `${where(i, chain.length)}: grants[${bad.index}] ${how} inside any parent grant`);
    }
  }
  if (!trustedRoots.has(chain[0]!.iss)) return refuse('untrusted_root', 'the root issuer is not trusted by this gateway');
  return { ok: true, chain };
}

function chainTextsOrMalformed(chain: Token[]): { unsigned: string[] } {
  try {
    return chainTexts(chain);
  } catch {
    throw new CapabilityError('malformed', 'token is not canonicalizable (floats, unsafe integers or too deep)');
  }
}

function where(i: number, n: number): string {
  return i === n - 1 ? 'the presented token' : `chain link ${i} (root is 0)`;
}

function refuse(code: RefusalCode, message: string): StaticRefusal {
  return { ok: false, code, message };
}
