import { createNobleProvider } from '../crypto/noble.ts';
import type { CryptoProvider } from '../crypto/provider.ts';
import { seededRandom } from '../crypto/seeded-random.ts';
import { fromHex, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { jcs } from '../encoding/jcs.ts';
import { didFromPublicKey, type Did } from '../identity/did.ts';
import { DOMAINS, signObject } from '../identity/signing.ts';
import type { RefusalCode } from './errors.ts';
import type { AccessRequest, Grant } from './grant.ts';
import { mintRevocation, type Revocation } from './revocation.ts';
import { delegateToken, mintToken, type Token } from './token.ts';

/**
 * Golden vectors for capability tokens (contracts/vectors/capability.json): valid tokens and
 * chains, one case per refusal code, revocations (valid, not applicable, forged), all derived
 * from fixed seeds. Ed25519 signing is deterministic, so every provider re-derives the same bytes.
 */
export const VECTOR_SEEDS = {
  root: '01'.repeat(32),
  alice: '02'.repeat(32),
  bob: '03'.repeat(32),
  carol: '04'.repeat(32),
  mallory: '05'.repeat(32),
  gateway: '06'.repeat(32),
  other_gateway: '07'.repeat(32),
} as const;
export type VectorKey = keyof typeof VECTOR_SEEDS;

export interface VectorCase {
  name: string;
  /** the presented token, as a JSON object */
  token: unknown;
  /** its compact transport form */
  compact: string;
  request: AccessRequest;
  session_did: string;
  now_ms: number;
  /** names of entries in `revocations` the gateway knows */
  revocations: string[];
  expect: { ok: true; token_id: string; grant_index: number } | { ok: false; code: RefusalCode; arg?: string };
}

export interface CapabilityVectors {
  description: string;
  keys: Record<VectorKey, { seed: string; did: string }>;
  config: { audience: string; trusted_roots: string[] };
  revocations: Record<string, { revocation: unknown; valid: boolean }>;
  cases: VectorCase[];
}

const T0 = 1_800_000_000; // seconds
const NOW_MS = (T0 + 600) * 1000;

export const VECTOR_ROOT_GRANTS: Grant[] = [
  { method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/**' } } },
  { method: 'tools/call', tool: 'write_file', args: { path: { glob: 'repo/tmp/*' }, mode: { in: ['create', 'overwrite'] } } },
  { method: 'tools/call', tool: 'search', args: { limit: { max: 100 }, deep: { eq: false } } },
  { method: 'tools/list' },
];

export function capabilityVectors(crypto: CryptoProvider = createNobleProvider({ random: seededRandom('capability-vectors') })): CapabilityVectors {
  const seed = (k: VectorKey) => fromHex(VECTOR_SEEDS[k]);
  const did = (k: VectorKey): Did => didFromPublicKey(crypto.ed25519PublicKey(seed(k)));
  let counter = 0;
  const nextId = () => toB64u(crypto.sha256(utf8(`capability-vector-id-${counter++}`)).subarray(0, 16));
  const gw = did('gateway');

  const root = (over: Partial<{ sub: Did; aud: Did; nbf: number; exp: number; grants: Grant[]; key: VectorKey }> = {}) =>
    mintToken(crypto, {
      issuerKey: seed(over.key ?? 'root'),
      sub: over.sub ?? did('alice'),
      aud: over.aud ?? gw,
      grants: over.grants ?? VECTOR_ROOT_GRANTS,
      nbf: over.nbf ?? T0,
      exp: over.exp ?? T0 + 3600,
      id: nextId(),
    });
  const delegate = (parent: Token, key: VectorKey, sub: VectorKey, grants: Grant[], exp?: number) =>
    delegateToken(crypto, { parent, issuerKey: seed(key), sub: did(sub), grants, id: nextId(), ...(exp ? { exp } : {}) });
  /** Signs any object as a token, bypassing every check of mint/delegate (for refusal vectors). */
  const forge = (key: VectorKey, unsigned: Record<string, unknown>): Token =>
    signObject(crypto, seed(key), DOMAINS.capability, unsigned) as unknown as Token;
  const childOf = (parent: Token, over: Record<string, unknown>) => ({
    v: 1, id: nextId(), iss: parent.sub, sub: did('bob'), aud: parent.aud, iat: parent.nbf, nbf: parent.nbf, exp: parent.exp,
    grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/src/**' } } }], prf: [parent], ...over,
  });

  const readSrc: Grant[] = [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/src/**' } } }];
  const readReq = (path: string): AccessRequest => ({ method: 'tools/call', tool: 'read_text_file', args: { path } });

  const rootTok = root();
  const chain2 = delegate(rootTok, 'alice', 'bob', readSrc, T0 + 1800);
  const chain3 = delegate(chain2, 'bob', 'carol', [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/src/*.ts' } } }]);

  let deep: Token = root({ grants: [{ method: 'tools/list' }] });
  const hops: VectorKey[] = ['alice', 'bob', 'carol'];
  for (let i = 0; i < 8; i++) {
    // alternate subjects so each link is a proper delegation; the ninth link is one too many
    const iss = hops[i % 3]!;
    const sub = hops[(i + 1) % 3]!;
    deep = forge(iss, { v: 1, id: nextId(), iss: did(iss), sub: did(sub), aud: gw, iat: T0, nbf: T0, exp: T0 + 3600, grants: [{ method: 'tools/list' }], prf: [deep] });
  }

  const tampered = { ...chain2, grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/**' } } }] };

  const revocations: Record<string, Revocation | unknown> = {
    root_revokes_chain2: mintRevocation(crypto, seed('root'), chain2.id, NOW_MS - 1000),
    alice_revokes_root: mintRevocation(crypto, seed('alice'), rootTok.id, NOW_MS - 1000),
    root_revokes_root: mintRevocation(crypto, seed('root'), rootTok.id, NOW_MS - 1000),
    mallory_revokes_root: mintRevocation(crypto, seed('mallory'), rootTok.id, NOW_MS - 1000),
    forged: { ...(mintRevocation(crypto, seed('root'), rootTok.id, NOW_MS - 1000) as Revocation), ts: NOW_MS },
  };
  const revValid: Record<string, boolean> = { root_revokes_chain2: true, alice_revokes_root: true, root_revokes_root: true, mallory_revokes_root: true, forged: false };

  const cases: VectorCase[] = [];
  const add = (name: string, token: unknown, request: AccessRequest, expect: VectorCase['expect'], o: { session?: VectorKey; now?: number; revs?: string[] } = {}) => {
    const t = token as Token;
    cases.push({
      name,
      token,
      compact: toB64u(utf8(jcs(token))),
      request,
      session_did: did(o.session ?? (didKeyName(t.sub) ?? 'alice')),
      now_ms: o.now ?? NOW_MS,
      revocations: o.revs ?? [],
      expect,
    });
  };
  const names = Object.keys(VECTOR_SEEDS) as VectorKey[];
  const didKeyName = (d: unknown) => names.find((k) => did(k) === d);
  const ok = (t: Token, grant_index: number) => ({ ok: true as const, token_id: t.id, grant_index });
  const no = (code: RefusalCode, arg?: string) => ({ ok: false as const, code, ...(arg ? { arg } : {}) });

  add('root token, read inside its glob', rootTok, readReq('repo/README.md'), ok(rootTok, 0));
  add('root token, write with a listed mode', rootTok, { method: 'tools/call', tool: 'write_file', args: { path: './repo/tmp/x', mode: 'create' } }, ok(rootTok, 1));
  add('root token, tool-less method grant', rootTok, { method: 'tools/list' }, ok(rootTok, 3));
  add('root token, search under max', rootTok, { method: 'tools/call', tool: 'search', args: { limit: 100, deep: false, q: 'x' } }, ok(rootTok, 2));
  add('chain of 2, narrowed glob', chain2, readReq('repo/src/main.ts'), ok(chain2, 0));
  add('chain of 3', chain3, readReq('repo/src/a.ts'), ok(chain3, 0));
  add('revocation by someone not above the token has no effect', rootTok, readReq('repo/a'), ok(rootTok, 0), { revs: ['mallory_revokes_root', 'forged'] });
  add('the delegate (below) cannot revoke its parent', chain2, readReq('repo/src/a'), ok(chain2, 0), { revs: ['alice_revokes_root'] });

  add('malformed: unknown field (signed)', forge('root', { ...stripSig(rootTok), extra: 1 }), readReq('repo/a'), no('malformed'));
  add('malformed: constraint with two operators', forge('root', { ...stripSig(rootTok), grants: [{ method: 'tools/call', args: { path: { eq: 'a', max: 1 } } }] }), readReq('repo/a'), no('malformed'));
  add('malformed: non-canonical glob', forge('root', { ...stripSig(rootTok), grants: [{ method: 'tools/call', args: { path: { glob: 'repo/../etc' } } }] }), readReq('repo/a'), no('malformed'));
  add('chain_too_deep: nine tokens', deep, { method: 'tools/list' }, no('chain_too_deep'));
  add('bad_signature: grants changed after signing', tampered, readReq('repo/a'), no('bad_signature'));
  add('delegation_issuer: child signed by a stranger', forge('mallory', childOf(rootTok, { iss: did('mallory') })), readReq('repo/src/a'), no('delegation_issuer'), { session: 'bob' });
  add('delegation_audience', forge('alice', childOf(rootTok, { aud: did('other_gateway') })), readReq('repo/src/a'), no('delegation_audience'), { session: 'bob' });
  add('delegation_nbf', forge('alice', childOf(rootTok, { nbf: T0 - 1 })), readReq('repo/src/a'), no('delegation_nbf'), { session: 'bob' });
  add('delegation_exp', forge('alice', childOf(rootTok, { exp: T0 + 3601 })), readReq('repo/src/a'), no('delegation_exp'), { session: 'bob' });
  add('grant_escalation: child widens the glob', forge('alice', childOf(rootTok, { grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'secret/**' } } }] })), readReq('secret/a'), no('grant_escalation'), { session: 'bob' });
  add('grant_escalation: child drops a constraint', forge('alice', childOf(rootTok, { grants: [{ method: 'tools/call', tool: 'write_file', args: { path: { glob: 'repo/tmp/*' } } }] })), readReq('repo/src/a'), no('grant_escalation'), { session: 'bob' });
  add('grant_unknown: undecided glob containment', forge('carol', childOf(chain3, { iss: did('carol'), sub: did('bob'), grants: [{ method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/src/*x.ts' } } }] })), readReq('repo/src/ax.ts'), no('grant_unknown'), { session: 'bob' });
  add('untrusted_root', root({ key: 'mallory' }), readReq('repo/a'), no('untrusted_root'));
  add('wrong_subject: bearer is not the subject', chain2, readReq('repo/src/a'), no('wrong_subject'), { session: 'alice' });
  add('wrong_audience', root({ aud: did('other_gateway') }), readReq('repo/a'), no('wrong_audience'));
  add('not_yet_valid', rootTok, readReq('repo/a'), no('not_yet_valid'), { now: T0 * 1000 - 1 });
  add('valid from nbf exactly', rootTok, readReq('repo/a'), ok(rootTok, 0), { now: T0 * 1000 });
  add('expired at exp exactly', rootTok, readReq('repo/a'), no('expired'), { now: (T0 + 3600) * 1000 });
  add('revoked: the root issuer revokes the child', chain2, readReq('repo/src/a'), no('revoked'), { revs: ['root_revokes_chain2'] });
  add('revoked: a child token dies with its revoked parent', chain3, readReq('repo/src/a.ts'), no('revoked'), { revs: ['root_revokes_root'] });
  add('no_matching_grant: tool not granted', rootTok, { method: 'tools/call', tool: 'delete_file', args: { path: 'repo/a' } }, no('no_matching_grant'));
  add('no_matching_grant: method not granted', rootTok, { method: 'resources/read' }, no('no_matching_grant'));
  add('arg_violation: path escapes the glob root', chain2, readReq('repo/src/../secret.txt'), no('arg_violation', 'path'));
  add('arg_violation: refused path (backslash)', rootTok, readReq('repo\\a'), no('arg_violation', 'path'));
  add('arg_violation: mode outside the list', rootTok, { method: 'tools/call', tool: 'write_file', args: { path: 'repo/tmp/x', mode: 'append' } }, no('arg_violation', 'mode'));
  add('arg_violation: over max', rootTok, { method: 'tools/call', tool: 'search', args: { limit: 101, deep: false } }, no('arg_violation', 'limit'));
  add('arg_violation: true is not 1', rootTok, { method: 'tools/call', tool: 'search', args: { limit: 1, deep: 0 } }, no('arg_violation', 'deep'));
  add('arg_violation: a named argument is missing', rootTok, { method: 'tools/call', tool: 'search', args: { limit: 1 } }, no('arg_violation', 'deep'));

  return {
    description:
      'Capability tokens (PROTOCOL.md section 7, contracts/SPEC.md section 7). For each case, a checker configured with `config` that knows the named valid revocations returns `expect` for check(compact, request, session_did, now_ms). Seeds are Ed25519 signing seeds (hex).',
    keys: Object.fromEntries(names.map((k) => [k, { seed: VECTOR_SEEDS[k], did: did(k) }])) as CapabilityVectors['keys'],
    config: { audience: gw, trusted_roots: [did('root')] },
    revocations: Object.fromEntries(Object.entries(revocations).map(([k, r]) => [k, { revocation: r, valid: revValid[k]! }])),
    cases,
  };
}

function stripSig(t: Token): Record<string, unknown> {
  const { sig: _sig, ...rest } = t;
  return rest;
}

