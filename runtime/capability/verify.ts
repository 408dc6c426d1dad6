import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64u } from '../encoding/base64url.ts';
import { cachedDidKey } from './did-cache.ts';
import { DOMAINS, signingInput } from '../identity/signing.ts';
import { CapabilityError, type RefusalCode } from './errors.ts';
import { grantsAttenuate } from './grant.ts';
import { tokenChain, type Token } from './token.ts';

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

export function verifyChainStatic(
  crypto: CryptoProvider,
  token: unknown,
  trustedRoots: ReadonlySet<string>,
  publicKeyOf: PublicKeyOf = (did) => cachedDidKey(did)!,
): StaticResult {
  let chain: Token[];
  try {
    chain = tokenChain(token);
  } catch (err) {
    if (err instanceof CapabilityError) return refuse(err.code as RefusalCode, err.message);
    throw err;
  }
  for (let i = 0; i < chain.length; i++) {
    const link = chain[i]!;
    let ok = false;
    try {
      ok = crypto.ed25519Verify(
        publicKeyOf(link.iss),
        signingInput(DOMAINS.capability, link as unknown as Record<string, unknown>),
        fromB64u(link.sig, 64),
      );
    } catch {
      ok = false;
    }
    if (!ok) return refuse('bad_signature', `${where(i, chain.length)}: signature does not verify under its issuer's key`);
  }
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

function where(i: number, n: number): string {
  return i === n - 1 ? 'the presented token' : `chain link ${i} (root is 0)`;
}

function refuse(code: RefusalCode, message: string): StaticRefusal {
  return { ok: false, code, message };
}
