import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '../../crypto/index.ts';
import { fromHex } from '../../encoding/bytes.ts';
import { didFromPublicKey } from '../../identity/did.ts';
import { generateIdentity, saveKeyFile } from '../../identity/index.ts';
import { CapabilityChecker } from '../../capability/checker.ts';
import { verifyRevocation } from '../../capability/revocation.ts';
import { decodeToken } from '../../capability/token.ts';
import { startTestRedis } from '../../redis/test-server.ts';
import { RedisRevocationSource } from '../../capability/redis-revocations.ts';
import type { CliContext } from '../command.ts';
import { tokenCommands } from './token.ts';

// The CLI is exercised by calling each command's run() with a captured context.
const crypto = createCryptoProvider();
const dir = mkdtempSync(join(tmpdir(), 'talos-token-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const seedFile = (name: string, hex: string) => {
  const path = join(dir, name);
  writeFileSync(path, hex + '\n');
  chmodSync(path, 0o600);
  return { path, did: didFromPublicKey(crypto.ed25519PublicKey(fromHex(hex))) };
};
const root = seedFile('root.seed', '11'.repeat(32));
const gateway = seedFile('gw.seed', '22'.repeat(32));
const bob = seedFile('bob.seed', '33'.repeat(32));
// Alice uses a real identity key file.
const aliceIdentity = generateIdentity(crypto);
const aliceKey = join(dir, 'alice.key.json');
saveKeyFile(aliceKey, aliceIdentity, { created: Date.now() });
const alice = { path: aliceKey, did: aliceIdentity.did };

async function run(name: string, options: Record<string, unknown>, positionals: string[] = [], json = false) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = { stdout: (s) => out.push(s), stderr: (s) => err.push(s), env: {}, cwd: dir, json, interactive: false };
  const command = tokenCommands.find((c) => c.name === name)!;
  const withDefaults = { ...Object.fromEntries(command.options.filter((o) => o.default !== undefined).map((o) => [o.name, o.default])), ...options };
  const code = await command.run({ options: withDefaults as never, positionals }, ctx);
  return { code, stdout: out.join(''), stderr: err.join('') };
}

t.test('mint, delegate, inspect, revoke', async (t) => {
  t.same(tokenCommands.map((c) => c.name), ['token mint', 'token delegate', 'token inspect', 'token revoke']);
  const minted = await run('token mint', {
    key: root.path,
    sub: alice.did.replace('did:talos:', 'did:key:'), // did:key is accepted and normalized
    aud: gateway.did,
    grant: ['tools/call:read_text_file path=repo/**', 'tools/list'],
    ttl: '30m',
    out: 'alice.token',
  });
  t.equal(minted.code, 0);
  const rootToken = decodeToken(readFileSync(join(dir, 'alice.token'), 'utf8').trim());
  t.equal(statSync(join(dir, 'alice.token')).mode & 0o777, 0o600, 'a token file is readable by its owner only');
  t.equal(rootToken.sub, alice.did);
  t.equal(rootToken.exp - rootToken.nbf, 1800);
  t.same(rootToken.grants[0], { method: 'tools/call', tool: 'read_text_file', args: { path: { glob: 'repo/**' } } });

  const delegated = await run('token delegate', {
    key: alice.path,
    token: 'alice.token',
    sub: bob.did,
    grant: ['tools/call:read_text_file path=repo/src/**'],
    ttl: '10m',
  });
  t.equal(delegated.code, 0);
  const compact = delegated.stdout.trim();
  const child = decodeToken(compact);
  t.equal(child.prf?.[0].id, rootToken.id);

  const checker = new CapabilityChecker({ crypto, audience: gateway.did, trustedRoots: [root.did] });
  t.match(checker.check(compact, { method: 'tools/call', tool: 'read_text_file', args: { path: 'repo/src/x' } }, bob.did, Date.now()), { ok: true });

  const inspected = await run('token inspect', { root: [root.did] }, [compact]);
  t.equal(inspected.code, 0);
  t.match(inspected.stdout, /grant tools\/call:read_text_file path=repo\/src\/\*\*/);
  t.match(inspected.stdout, /verified/);
  const distrust = await run('token inspect', { root: [bob.did] }, [compact], true);
  t.equal(distrust.code, 1);
  t.match(JSON.parse(distrust.stdout), { verdict: { ok: false, code: 'untrusted_root' }, chain: [{ id: rootToken.id }, { id: child.id }] });

  const revoked = await run('token revoke', { key: root.path, token: compact, out: 'rev.json' }, [], true);
  t.equal(revoked.code, 0);
  const rev = JSON.parse(readFileSync(join(dir, 'rev.json'), 'utf8'));
  t.equal(rev.token_id, child.id);
  t.equal(verifyRevocation(crypto, rev), true);
  t.ok(checker.applyRevocation(rev));
  t.match(checker.check(compact, { method: 'tools/call', tool: 'read_text_file', args: { path: 'repo/src/x' } }, bob.did, Date.now()), { code: 'revoked' });
});

t.test('writing over an existing, world-readable token file narrows it to its owner', async (t) => {
  writeFileSync(join(dir, 'open.token'), 'old\n', { mode: 0o644 });
  chmodSync(join(dir, 'open.token'), 0o644);
  const minted = await run('token mint', { key: root.path, sub: bob.did, aud: gateway.did, grant: ['tools/list'], ttl: '5m', out: 'open.token' });
  t.equal(minted.code, 0);
  t.equal(statSync(join(dir, 'open.token')).mode & 0o777, 0o600);
  t.not(readFileSync(join(dir, 'open.token'), 'utf8'), 'old\n');
});

t.test('refusals are typed errors, nothing is written', async (t) => {
  await t.rejects(run('token mint', { key: root.path, sub: alice.did, aud: gateway.did, grant: ['tools/call path=../x'], ttl: '1h', out: 'never.token' }), { code: 'bad_grant_syntax' });
  t.throws(() => readFileSync(join(dir, 'never.token')));
  await t.rejects(run('token mint', { key: root.path, sub: alice.did, aud: gateway.did, grant: ['tools/list'], ttl: '10 minutes' }), { code: 'bad_duration' });
  await t.rejects(run('token mint', { key: root.path, sub: 'bob', aud: gateway.did, grant: ['tools/list'] }), { code: 'usage' });
  const parent = (await run('token mint', { key: root.path, sub: alice.did, aud: gateway.did, grant: ['tools/call:read path=repo/**'], ttl: '5m' })).stdout.trim();
  await t.rejects(run('token delegate', { key: alice.path, token: parent, sub: bob.did, grant: ['tools/call:read path=other/**'] }), { code: 'grant_escalation' });
  await t.rejects(run('token delegate', { key: alice.path, token: parent, sub: bob.did, grant: ['tools/call:read path=**'] }), { code: 'grant_unknown' });
  await t.rejects(run('token delegate', { key: bob.path, token: parent, sub: bob.did, grant: ['tools/call:read path=repo/a'] }), { code: 'delegation_issuer' });
  await t.rejects(run('token delegate', { key: alice.path, token: parent, sub: bob.did, grant: ['tools/call:read path=repo/a'], ttl: '1h' }), { code: 'delegation_exp' });
  await t.rejects(run('token revoke', { key: root.path }), { code: 'usage' });
});

t.test('revoke --redis publishes to every gateway', async (t) => {
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const source = new RedisRevocationSource({ url: redis.url });
  t.teardown(() => source.close());
  await source.ready();
  const checker = new CapabilityChecker({ crypto, audience: gateway.did, trustedRoots: [root.did], revocations: source });
  t.teardown(() => checker.close());
  const tok = (await run('token mint', { key: root.path, sub: alice.did, aud: gateway.did, grant: ['tools/list'], ttl: '5m' })).stdout.trim();
  t.equal(checker.check(tok, { method: 'tools/list' }, alice.did, Date.now()).ok, true);
  const r = await run('token revoke', { key: root.path, token: tok, redis: redis.url });
  t.equal(r.code, 0);
  const id = decodeToken(tok).id;
  const end = Date.now() + 10_000;
  while (!checker.isRevoked(id) && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
  t.match(checker.check(tok, { method: 'tools/list' }, alice.did, Date.now()), { code: 'revoked' });
});
