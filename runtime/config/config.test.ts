import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, resolveConfig, toolLimits } from './config.ts';

const ISSUER = 'did:talos:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK';
const base = () => ({
  v: 1,
  gateway: { listen: { port: 7800 } },
  trustedIssuers: [ISSUER],
  upstreams: [{ name: 'fs', transport: 'stdio', command: 'node', args: ['server.js'] }],
});

const dir = mkdtempSync(join(tmpdir(), 'talos-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('defaults are filled in and relative paths resolved from the file', async (t) => {
  const file = join(dir, 'talos.config.json');
  writeFileSync(file, JSON.stringify({ ...base(), gateway: { listen: { port: 1 }, keyFile: 'gw.key.json' }, audit: { store: 'sqlite:audit.db' } }));
  const c = loadConfig(file, {});
  t.equal(c.gateway.host, '127.0.0.1');
  t.equal(c.gateway.keyFile, join(dir, 'gw.key.json'));
  t.equal(c.audit.store, `sqlite:${join(dir, 'audit.db')}`);
  t.equal(c.redis, undefined, 'no Redis unless configured');
  t.same(c.upstreams[0], { name: 'fs', transport: 'stdio', command: 'node', args: ['server.js'], env: {}, toolPrefix: '' });
  t.same(c.overrides, []);
  t.ok(c.gateway.cryptoThreads >= 1, 'a worker thread for uncached chains by default');
});

t.test('environment variables override the file', async (t) => {
  const c = resolveConfig(base(), {
    baseDir: dir,
    env: { TALOS_REDIS_URL: 'redis://127.0.0.1:6399', TALOS_AUDIT_STORE: 'postgres://x/db', TALOS_GATEWAY_PORT: '9001', TALOS_TRUSTED_ISSUERS: `${ISSUER}, ` },
  });
  t.same(c.redis, { url: 'redis://127.0.0.1:6399', prefix: 'talos:' });
  t.equal(c.audit.store, 'postgres://x/db');
  t.equal(c.gateway.port, 9001);
  t.same(c.trustedIssuers, [ISSUER]);
  t.equal(c.overrides.length, 4);
  t.equal(resolveConfig(base(), { baseDir: dir, env: { TALOS_CRYPTO_THREADS: '0' } }).gateway.cryptoThreads, 0, 'TALOS_CRYPTO_THREADS=0: no pool');
});

t.test('errors name the bad field', async (t) => {
  const bad = (mutate: (c: any) => void, env: NodeJS.ProcessEnv = {}) => {
    const c: any = base();
    mutate(c);
    return () => resolveConfig(c, { baseDir: dir, env });
  };
  t.throws(bad((c) => (c.gateway.listen.port = 70000)), { code: 'config_invalid', message: /gateway\.listen\.port/ });
  t.throws(bad((c) => (c.upstreams[0].transport = 'sse')), { message: /upstreams\[0\]\.transport/ });
  t.throws(bad((c) => delete c.upstreams[0].command), { message: /upstreams\[0\]\.command is required/ });
  t.throws(bad((c) => (c.upstreams[0].url = 'http://x')), { message: /upstreams\[0\]\.url is only for the http/ });
  t.throws(bad((c) => c.upstreams.push({ name: 'fs', transport: 'http', url: 'http://x' })), { message: /upstreams\[1\]\.name "fs" is used twice/ });
  t.throws(bad((c) => (c.extra = 1)), { message: /extra is not allowed/ });
  t.throws(bad((c) => (c.trustedIssuers = ['did:web:x'])), { message: /trustedIssuers\[0\]/ });
  t.throws(bad((c) => (c.limits = { rate: { capacity: 5, refillPerSecond: 0 } })), { message: /limits\.rate\.refillPerSecond/ });
  t.throws(bad(() => {}, { TALOS_REDIS_URL: 'http://nope' }), { message: /redis\.url.*TALOS_REDIS_URL/ });
  t.throws(bad(() => {}, { TALOS_GATEWAY_PORT: 'abc' }), ConfigError);
  t.throws(bad(() => {}, { TALOS_CRYPTO_THREADS: 'many' }), { code: 'config_invalid', message: /gateway\.cryptoThreads/ });
  t.throws(bad((c) => (c.gateway.cryptoThreads = -1)), { message: /gateway\.cryptoThreads/ });
});

t.test('unreadable and malformed files', async (t) => {
  t.throws(() => loadConfig(join(dir, 'missing.json'), {}), { code: 'config_unreadable', message: /ENOENT/ });
  const dup = join(dir, 'dup.json');
  writeFileSync(dup, '{"v":1,"v":1}');
  t.throws(() => loadConfig(dup, {}), { code: 'config_invalid', message: /not valid JSON/ });
});

t.test('per-tool limits fall back to the defaults', async (t) => {
  const c = resolveConfig({ ...base(), limits: { defaultCost: 2, tools: { echo: { cost: 5 }, slow: { rate: { capacity: 1, refillPerSecond: 1 } } } } }, { baseDir: dir });
  t.same(toolLimits(c.limits, 'echo'), { cost: 5, rate: { capacity: 60, refillPerSecond: 10 } });
  t.same(toolLimits(c.limits, 'slow'), { cost: 2, rate: { capacity: 1, refillPerSecond: 1 } });
  t.same(toolLimits(c.limits, 'constructor'), { cost: 2, rate: { capacity: 60, refillPerSecond: 10 } }, 'no prototype keys');
});

t.test('the example configuration in examples/ is valid', async (t) => {
  const file = new URL('../../examples/talos.config.json', import.meta.url).pathname;
  const c = loadConfig(file, {});
  t.equal(c.upstreams.length, 3);
  t.equal(c.redis?.url, 'redis://127.0.0.1:6379');
  t.match(c.audit.store, /^sqlite:\/.*examples\/audit\.db$/);
});
