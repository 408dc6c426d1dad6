import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { fromUtf8, utf8 } from '../encoding/bytes.ts';
import { jcs } from '../encoding/jcs.ts';
import { parseJson } from '../encoding/json.ts';
import { didOfDerivedKey, type Did } from '../identity/did.ts';
import { isValidDid } from './did-cache.ts';
import { DOMAINS, signObject } from '../identity/signing.ts';
import { validate } from '../../contracts/validate.ts';
import { SchemaError } from '../errors.ts';
import { CapabilityError } from './errors.ts';
import { grantProblem, grantsAttenuate, isPlainObject, MAX_GRANTS, type Grant } from './grant.ts';

/**
 * Capability tokens (PROTOCOL.md section 7). The wire form is the JSON object below, signed
 * under `talos/v1/capability` by the key of `iss`; `prf` holds the whole parent token.
 *   { v: 1, id, iss, sub, aud, iat, nbf, exp, grants, prf?: [parent], sig }
 * The compact transport form is base64url(JCS(token)), carried in MCP `params._meta` under
 * CAPABILITY_META_KEY.
 */
export interface Token {
  v: 1;
  id: string;
  iss: Did;
  sub: Did;
  aud: Did;
  iat: number;
  nbf: number;
  exp: number;
  grants: Grant[];
  prf?: [Token];
  sig: string;
}

export type UnsignedToken = Omit<Token, 'sig'>;

/** The `_meta` key of an MCP request under which the compact token travels. */
export const CAPABILITY_META_KEY = 'talos/capability';
/** A chain holds at most this many tokens, the presented one included. */
export const MAX_CHAIN_DEPTH = 8;
/** Longest compact token accepted (characters of base64url). */
export const MAX_COMPACT_TOKEN_LENGTH = 64 * 1024;
export const TOKEN_ID_BYTES = 16;
/** Links parsed before giving up (beyond MAX_CHAIN_DEPTH so depth can be reported as such). */
const MAX_LINKS_PARSED = 24;
/** JSON nesting accepted when parsing a compact token: enough for MAX_LINKS_PARSED links. */
const MAX_TOKEN_JSON_DEPTH = 2 * MAX_LINKS_PARSED + 16;

const TOKEN_FIELDS = new Set(['v', 'id', 'iss', 'sub', 'aud', 'iat', 'nbf', 'exp', 'grants', 'prf', 'sig']);
const SIG_B64U = /^[A-Za-z0-9_-]{85}[AQgw]$/;
const ID_B64U = /^[A-Za-z0-9_-]{21}[AQgw]$/;

/** Why one link (ignoring its parent) is malformed, or null. */
export function linkProblem(t: unknown): string | null {
  if (!isPlainObject(t)) return 'a token must be an object';
  for (const k of Object.keys(t)) if (!TOKEN_FIELDS.has(k)) return `unknown token field ${JSON.stringify(k)}`;
  if (t.v !== 1) return 'v must be 1';
  if (typeof t.id !== 'string' || !ID_B64U.test(t.id)) return 'id must be base64url of 16 bytes';
  for (const f of ['iss', 'sub', 'aud'] as const) if (!isValidDid(t[f])) return `${f} must be a did:talos DID`;
  for (const f of ['iat', 'nbf', 'exp'] as const) {
    const x = t[f];
    if (!Number.isSafeInteger(x) || (x as number) < 0) return `${f} must be a non-negative integer (seconds)`;
  }
  if (!Array.isArray(t.grants) || t.grants.length === 0 || t.grants.length > MAX_GRANTS) return `grants must hold 1..${MAX_GRANTS} grants`;
  for (let i = 0; i < t.grants.length; i++) {
    const p = grantProblem(t.grants[i]);
    if (p) return `grants[${i}]: ${p}`;
  }
  if ('prf' in t && (!Array.isArray(t.prf) || t.prf.length !== 1)) return 'prf must hold exactly one parent token';
  if (typeof t.sig !== 'string' || !SIG_B64U.test(t.sig)) return 'sig must be base64url of 64 bytes';
  return null;
}

/** Every link of a token, root first, each link's shape checked (CapabilityError 'malformed'); depth NOT checked. */
export function parseLinks(token: unknown): Token[] {
  // Structure first, by the contract schema (contracts/schemas/capability.schema.json);
  // then the semantic rules the schema cannot state (valid DID keys, canonical globs, values).
  try {
    validate('capability', token);
  } catch (err) {
    if (err instanceof SchemaError) throw new CapabilityError('malformed', err.message);
    throw err;
  }
  const chain: unknown[] = [];
  let t: unknown = token;
  for (;;) {
    if (chain.length >= MAX_LINKS_PARSED) throw new CapabilityError('malformed', 'delegation chain is absurdly long');
    const p = linkProblem(t);
    if (p) throw new CapabilityError('malformed', chain.length === 0 ? p : `parent ${chain.length}: ${p}`);
    chain.push(t);
    const prf = (t as Token).prf;
    if (prf === undefined) break;
    t = prf[0];
  }
  return chain.reverse() as Token[];
}

export function checkDepth(chain: Token[]): void {
  if (chain.length > MAX_CHAIN_DEPTH) {
    throw new CapabilityError('chain_too_deep', `a chain holds at most ${MAX_CHAIN_DEPTH} tokens, this one ${chain.length}`);
  }
}

/**
 * The chain of a token, root first, presented token last; every link's shape checked.
 * Throws CapabilityError('malformed') — shapes are checked before depth — or
 * CapabilityError('chain_too_deep').
 */
export function tokenChain(token: unknown): Token[] {
  const chain = parseLinks(token);
  checkDepth(chain);
  return chain;
}

/**
 * The JCS text of one well-formed link, given the JCS text of its parent: each link's own
 * fields are serialized once, the parent's text is reused. The member order is JCS order
 * (aud < exp < grants < iat < id < iss < nbf < prf < sig < sub < v), fixed because the token
 * schema is closed; integers are validated safe and non-negative, strings use JSON.stringify
 * exactly as JCS does. Throws EncodingError when a grant value cannot be canonicalized.
 */
export function linkJcs(t: Token, parentText: string | null, withSig: boolean, grantsText: string = jcs(t.grants)): string {
  return (
    '{"aud":' + JSON.stringify(t.aud) +
    ',"exp":' + String(t.exp) +
    ',"grants":' + grantsText +
    ',"iat":' + String(t.iat) +
    ',"id":' + JSON.stringify(t.id) +
    ',"iss":' + JSON.stringify(t.iss) +
    ',"nbf":' + String(t.nbf) +
    (parentText === null ? '' : ',"prf":[' + parentText + ']') +
    (withSig ? ',"sig":' + JSON.stringify(t.sig) : '') +
    ',"sub":' + JSON.stringify(t.sub) +
    ',"v":1}'
  );
}

/** The signed and unsigned JCS texts of every link of a well-formed chain (root first). */
export function chainTexts(chain: Token[]): { signed: string[]; unsigned: string[] } {
  const signed: string[] = [];
  const unsigned: string[] = [];
  let parent: string | null = null;
  for (const link of chain) {
    const grantsText = jcs(link.grants);
    unsigned.push(linkJcs(link, parent, false, grantsText));
    parent = linkJcs(link, parent, true, grantsText);
    signed.push(parent);
  }
  return { signed, unsigned };
}

/** base64url(JCS(token)): the compact transport form. */
export function encodeToken(token: Token): string {
  return toB64u(utf8(jcs(token)));
}

/**
 * Parses the compact form. Refuses (CapabilityError 'malformed') anything that is not the
 * base64url of the JCS bytes of a well-formed token, so a token has exactly one compact form.
 */
export function decodeToken(compact: string): Token {
  const { value, text } = decodeCompactJson(compact);
  const chain = parseLinks(value);
  requireCanonical(chain, text);
  checkDepth(chain);
  return value as Token;
}

/**
 * Refuses a token whose received text is not exactly JCS(token). That one comparison makes
 * the native JSON.parse as strict as the protocol parser: a duplicate key, an integer outside
 * ±(2^53 − 1) (rounded by JSON.parse), a float, an escape or whitespace that JCS would not
 * write all change the re-serialized text (or make jcs throw). Returns the chain's texts.
 */
export function requireCanonical(chain: Token[], text: string): { signed: string[]; unsigned: string[] } {
  let texts: { signed: string[]; unsigned: string[] };
  try {
    texts = chainTexts(chain);
  } catch {
    throw new CapabilityError('malformed', 'token is not canonicalizable (floats, unsafe integers or too deep)');
  }
  if (texts.signed[texts.signed.length - 1] !== text) {
    throw new CapabilityError('malformed', 'a compact token must hold the JCS form of the token');
  }
  return texts;
}

/** base64url -> UTF-8 -> JSON (native parser; canonical form is enforced by requireCanonical). */
export function decodeCompactJson(compact: string): { value: unknown; text: string } {
  if (typeof compact !== 'string' || compact.length === 0 || compact.length > MAX_COMPACT_TOKEN_LENGTH) {
    throw new CapabilityError('malformed', `a compact token is 1..${MAX_COMPACT_TOKEN_LENGTH} base64url characters`);
  }
  try {
    const text = fromUtf8(fromB64u(compact));
    return { value: JSON.parse(text) as unknown, text };
  } catch {
    throw new CapabilityError('malformed', 'a compact token must be base64url of JSON');
  }
}

/** Parses either transport form: a JSON object text or the compact form. */
export function parseTokenText(text: string): Token {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let value: unknown;
    try {
      value = parseJson(trimmed, { maxDepth: MAX_TOKEN_JSON_DEPTH });
    } catch (err) {
      throw new CapabilityError('malformed', `token JSON: ${(err as Error).message}`);
    }
    tokenChain(value);
    return value as Token;
  }
  return decodeToken(trimmed);
}

export interface MintOptions {
  /** Signing seed of the issuer (32 bytes). The issuer DID is derived from it. */
  issuerKey: Uint8Array;
  sub: string;
  aud: string;
  grants: Grant[];
  /** Seconds since the epoch. */
  nbf: number;
  exp: number;
  /** Defaults to nbf. */
  iat?: number;
  /** Defaults to 16 random bytes from the provider. */
  id?: string;
}

function signToken(crypto: CryptoProvider, issuerKey: Uint8Array, unsigned: UnsignedToken): Token {
  const token = signObject(crypto, issuerKey, DOMAINS.capability, unsigned as unknown as Record<string, unknown>) as unknown as Token;
  tokenChain(token); // refuse (and never hand out) a malformed or too deep token
  return token;
}

function buildUnsigned(crypto: CryptoProvider, o: MintOptions, iss: Did): UnsignedToken {
  if (!isValidDid(o.sub) || !isValidDid(o.aud)) throw new CapabilityError('malformed', 'sub and aud must be did:talos DIDs');
  if (!Number.isSafeInteger(o.nbf) || !Number.isSafeInteger(o.exp) || o.nbf < 0 || o.exp <= o.nbf) {
    throw new CapabilityError('malformed', 'nbf and exp must be integer seconds with nbf < exp');
  }
  if (!Array.isArray(o.grants) || o.grants.length === 0 || o.grants.length > MAX_GRANTS) {
    throw new CapabilityError('malformed', `a token holds 1..${MAX_GRANTS} grants`);
  }
  o.grants.forEach((g, i) => {
    const p = grantProblem(g);
    if (p) throw new CapabilityError('malformed', `grants[${i}]: ${p}`);
  });
  return {
    v: 1,
    id: o.id ?? toB64u(crypto.randomBytes(TOKEN_ID_BYTES)),
    iss,
    sub: o.sub as Did,
    aud: o.aud as Did,
    iat: o.iat ?? o.nbf,
    nbf: o.nbf,
    exp: o.exp,
    grants: structuredClone(o.grants),
  };
}

/** Mints a root token signed by `issuerKey`. */
export function mintToken(crypto: CryptoProvider, o: MintOptions): Token {
  const iss = didOfDerivedKey(crypto.ed25519PublicKey(o.issuerKey));
  return signToken(crypto, o.issuerKey, buildUnsigned(crypto, o, iss));
}

export interface DelegateOptions extends Omit<MintOptions, 'aud' | 'nbf' | 'exp'> {
  parent: Token;
  /** Default: the parent's. */
  nbf?: number;
  exp?: number;
}

/**
 * Delegates `parent` to a new subject, narrowing. The delegator must be the parent's subject,
 * and every rule of attenuation is checked here too, so a token that would be refused is
 * never minted (CapabilityError with the refusal code, e.g. grant_unknown for a glob
 * containment we do not decide).
 */
export function delegateToken(crypto: CryptoProvider, o: DelegateOptions): Token {
  const parent = o.parent;
  const chain = tokenChain(parent);
  if (chain.length + 1 > MAX_CHAIN_DEPTH) throw new CapabilityError('chain_too_deep', `a chain holds at most ${MAX_CHAIN_DEPTH} tokens`);
  const iss = didOfDerivedKey(crypto.ed25519PublicKey(o.issuerKey));
  if (iss !== parent.sub) throw new CapabilityError('delegation_issuer', 'only the subject of the parent token can delegate it');
  const nbf = o.nbf ?? parent.nbf;
  const exp = o.exp ?? parent.exp;
  if (nbf < parent.nbf) throw new CapabilityError('delegation_nbf', 'a delegated token cannot start before its parent');
  if (exp > parent.exp) throw new CapabilityError('delegation_exp', 'a delegated token cannot outlive its parent');
  const unsigned = buildUnsigned(crypto, { ...o, aud: parent.aud, nbf, exp }, iss);
  const bad = grantsAttenuate(parent.grants, unsigned.grants);
  if (bad) {
    throw new CapabilityError(bad.code, `grants[${bad.index}] is ${bad.code === 'grant_unknown' ? 'not provably' : 'not'} inside any parent grant`);
  }
  return signToken(crypto, o.issuerKey, { ...unsigned, prf: [parent] });
}
