import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createCryptoProvider } from '../../crypto/index.ts';
import type { CryptoProvider } from '../../crypto/provider.ts';
import { fromHex } from '../../encoding/bytes.ts';
import { normalizeDid } from '../../identity/did.ts';
import { loadKeyFile } from '../../identity/key-file.ts';
import { CapabilityChecker } from '../../capability/checker.ts';
import { RedisRevocationSource } from '../../capability/redis-revocations.ts';
import { mintRevocation } from '../../capability/revocation.ts';
import { formatGrant, parseDuration, parseGrant } from '../../capability/syntax.ts';
import { delegateToken, encodeToken, mintToken, parseTokenText, tokenChain, type Token } from '../../capability/token.ts';
import { optionalString, output, requireString, stringList, UsageError, writePrivateFile, type CliCommand, type CliContext } from '../command.ts';

/**
 * `talos token mint|delegate|inspect|revoke`: a thin layer over runtime/capability.
 * Keys come from identity key files (`talos identity new --out FILE`), or from a file holding
 * a 64-hex-digit Ed25519 seed. Tokens are read from a file or given inline (compact or JSON).
 */
const SEED_FILE = /^[0-9a-f]{64}$/;
const MAX_INPUT_FILE_BYTES = 256 * 1024;

function loadSigningKey(crypto: CryptoProvider, ctx: CliContext, file: string): Uint8Array {
  const path = resolve(ctx.cwd, file);
  if (existsSync(path) && statSync(path).size <= 128) {
    const text = readFileSync(path, 'utf8').trim();
    if (SEED_FILE.test(text)) return fromHex(text);
  }
  return loadKeyFile(crypto, path).sig.secretKey;
}

function readToken(ctx: CliContext, value: string): Token {
  const path = resolve(ctx.cwd, value);
  let text = value;
  if (value.length < 4096 && existsSync(path)) {
    if (statSync(path).size > MAX_INPUT_FILE_BYTES) throw new UsageError(`${value} is too large to be a token`);
    text = readFileSync(path, 'utf8');
  }
  return parseTokenText(text);
}

function did(value: string, option: string): string {
  try {
    return normalizeDid(value);
  } catch {
    throw new UsageError(`--${option} must be a did:talos or did:key DID`);
  }
}

const nowSeconds = () => Math.floor(Date.now() / 1000);
const iso = (s: number) => new Date(s * 1000).toISOString();

function emitToken(ctx: CliContext, token: Token, out: string | undefined): void {
  const compact = encodeToken(token);
  // A token is a credential: owner-only, as `talos init` writes agent.token.
  if (out) writePrivateFile(resolve(ctx.cwd, out), compact + '\n');
  output(ctx, { token: compact, id: token.id, iss: token.iss, sub: token.sub, aud: token.aud, nbf: token.nbf, exp: token.exp, depth: tokenChain(token).length }, () =>
    out ? `wrote ${out} (token ${token.id}, expires ${iso(token.exp)})` : compact,
  );
}

const grantOption = {
  name: 'grant',
  short: 'g',
  type: 'string' as const,
  multiple: true,
  description: 'a grant, e.g. "tools/call:read_text_file path=repo/src/**" (name=GLOB, name==VALUE, name~=A,B, name<=N)',
};

export const tokenCommands: CliCommand[] = [
  {
    name: 'token mint',
    summary: 'mint a root capability token (signed by the issuer key)',
    usage: 'talos token mint --key FILE --sub DID --aud DID --grant GRANT... [--ttl 30m] [--out FILE]',
    examples: [
      'talos token mint --key root.key.json --sub did:talos:z6Mk... --aud did:talos:z6Mk... --grant "tools/call:read_text_file path=repo/src/**" --ttl 30m',
      'talos token mint --key root.key.json --sub $AGENT --aud $GATEWAY -g "tools/list" -g "tools/call:search limit<=50" --out agent.token',
    ],
    options: [
      { name: 'key', short: 'k', type: 'string', description: "the issuer's key file (or a file with a hex Ed25519 seed)" },
      { name: 'sub', type: 'string', description: 'the agent the token is issued to' },
      { name: 'aud', type: 'string', description: 'the gateway that will accept it' },
      grantOption,
      { name: 'ttl', type: 'string', description: 'lifetime (30s, 30m, 2h, 7d)', default: '1h' },
      { name: 'out', short: 'o', type: 'string', description: 'write the compact token to this file' },
    ],
    async run({ options }, ctx) {
      const crypto = createCryptoProvider();
      const grants = stringList(options, 'grant').map(parseGrant);
      if (grants.length === 0) throw new UsageError('give at least one --grant');
      const nbf = nowSeconds();
      const token = mintToken(crypto, {
        issuerKey: loadSigningKey(crypto, ctx, requireString(options, 'key')),
        sub: did(requireString(options, 'sub'), 'sub'),
        aud: did(requireString(options, 'aud'), 'aud'),
        grants,
        nbf,
        exp: nbf + parseDuration(requireString(options, 'ttl')),
      });
      emitToken(ctx, token, optionalString(options, 'out'));
      return 0;
    },
  },
  {
    name: 'token delegate',
    summary: 'delegate a token you hold to another agent, narrowing its grants',
    usage: 'talos token delegate --key FILE --token TOKEN --sub DID --grant GRANT... [--ttl 10m] [--out FILE]',
    examples: [
      'talos token delegate --key agent.key.json --token agent.token --sub did:talos:z6Mk... --grant "tools/call:read_text_file path=repo/src/lib/**" --ttl 10m',
    ],
    options: [
      { name: 'key', short: 'k', type: 'string', description: "the holder's key file (the parent token's sub)" },
      { name: 'token', short: 't', type: 'string', description: 'the parent token: a file, or the token itself' },
      { name: 'sub', type: 'string', description: 'the agent to delegate to' },
      grantOption,
      { name: 'ttl', type: 'string', description: "lifetime (default: until the parent's expiry)" },
      { name: 'out', short: 'o', type: 'string', description: 'write the compact token to this file' },
    ],
    async run({ options }, ctx) {
      const crypto = createCryptoProvider();
      const parent = readToken(ctx, requireString(options, 'token'));
      const grants = stringList(options, 'grant').map(parseGrant);
      if (grants.length === 0) throw new UsageError('give at least one --grant');
      const ttl = optionalString(options, 'ttl');
      const nbf = Math.max(parent.nbf, nowSeconds());
      const token = delegateToken(crypto, {
        parent,
        issuerKey: loadSigningKey(crypto, ctx, requireString(options, 'key')),
        sub: did(requireString(options, 'sub'), 'sub'),
        grants,
        nbf,
        ...(ttl ? { exp: nbf + parseDuration(ttl) } : {}),
      });
      emitToken(ctx, token, optionalString(options, 'out'));
      return 0;
    },
  },
  {
    name: 'token inspect',
    summary: 'show a token and its delegation chain; with --root, verify it as a gateway would',
    usage: 'talos token inspect TOKEN [--root DID...] [--aud DID] [--sub DID]',
    examples: ['talos token inspect agent.token', 'talos token inspect agent.token --root did:talos:z6Mk... --aud did:talos:z6Mk...'],
    positionals: ['token'],
    options: [
      { name: 'root', type: 'string', multiple: true, description: 'a trusted root issuer: verify the signature chain' },
      { name: 'aud', type: 'string', description: 'the gateway DID to verify for (default: the token\'s own aud)' },
      { name: 'sub', type: 'string', description: 'the session DID to verify for (default: the token\'s own sub)' },
    ],
    async run({ options, positionals }, ctx) {
      const token = readToken(ctx, positionals[0]!);
      const chain = tokenChain(token);
      const links = chain.map((t) => ({ id: t.id, iss: t.iss, sub: t.sub, aud: t.aud, iat: t.iat, nbf: t.nbf, exp: t.exp, grants: t.grants.map(formatGrant) }));
      const roots = stringList(options, 'root').map((r) => did(r, 'root'));
      let verdict: { ok: boolean; code?: string; message?: string } | undefined;
      if (roots.length) {
        const aud = optionalString(options, 'aud');
        const sub = optionalString(options, 'sub');
        const checker = new CapabilityChecker({ crypto: createCryptoProvider(), audience: aud ? did(aud, 'aud') : token.aud, trustedRoots: roots });
        const r = checker.verifyToken(encodeToken(token), sub ? did(sub, 'sub') : token.sub, Date.now());
        verdict = r.ok ? { ok: true } : { ok: false, code: r.code, message: r.message };
      }
      output(ctx, { chain: links, compact: encodeToken(token), ...(verdict ? { verdict } : {}) }, () =>
        [
          ...links.flatMap((l, i) => [
            `${i === links.length - 1 ? 'token' : `link ${i}`} ${l.id}${i === 0 ? ' (root)' : ''}`,
            `  iss ${l.iss}`,
            `  sub ${l.sub}`,
            `  aud ${l.aud}`,
            `  valid ${iso(l.nbf)} .. ${iso(l.exp)}`,
            ...l.grants.map((g) => `  grant ${g}`),
          ]),
          ...(verdict ? [verdict.ok ? 'verified: signature chain, delegation, trust root, time, audience, subject' : `REFUSED [${verdict.code}]: ${verdict.message}`] : []),
        ].join('\n'),
      );
      return verdict && !verdict.ok ? 1 : 0;
    },
  },
  {
    name: 'token revoke',
    summary: 'sign a revocation of a token (yours or one below yours); optionally publish it to Redis',
    usage: 'talos token revoke --key FILE --token TOKEN|--id ID [--out FILE] [--redis URL]',
    examples: [
      'talos token revoke --key root.key.json --token agent.token',
      'talos token revoke --key root.key.json --id 3q2-7wAAAAAAAAAAAAAAAA --redis redis://127.0.0.1:6379',
    ],
    options: [
      { name: 'key', short: 'k', type: 'string', description: 'the key of the token\'s issuer or of an issuer above it' },
      { name: 'token', short: 't', type: 'string', description: 'the token to revoke (file or inline)' },
      { name: 'id', type: 'string', description: 'the token id to revoke, instead of --token' },
      { name: 'out', short: 'o', type: 'string', description: 'write the signed revocation (JSON) to this file' },
      { name: 'redis', type: 'string', description: 'publish it to every gateway through this Redis' },
    ],
    async run({ options }, ctx) {
      const crypto = createCryptoProvider();
      const tokenArg = optionalString(options, 'token');
      const idArg = optionalString(options, 'id');
      if ((tokenArg === undefined) === (idArg === undefined)) throw new UsageError('give exactly one of --token and --id');
      const tokenId = tokenArg !== undefined ? readToken(ctx, tokenArg).id : idArg!;
      const revocation = mintRevocation(crypto, loadSigningKey(crypto, ctx, requireString(options, 'key')), tokenId, Date.now());
      const out = optionalString(options, 'out');
      if (out) writeFileSync(resolve(ctx.cwd, out), JSON.stringify(revocation) + '\n');
      const url = optionalString(options, 'redis');
      if (url) {
        const source = new RedisRevocationSource({ url });
        try {
          await source.ready(5000);
          await source.publish(revocation);
        } finally {
          await source.close();
        }
      }
      output(ctx, { revocation, published: Boolean(url) }, () =>
        [JSON.stringify(revocation), ...(url ? ['published to every gateway listening on that Redis'] : [])].join('\n'),
      );
      return 0;
    },
  },
];
