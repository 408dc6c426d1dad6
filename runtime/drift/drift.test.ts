import t from 'tap';
import { resolveConfig } from '../config/config.ts';
import { configDigest, configSections, diffConfig, planDrift, DEFAULT_DRIFT_POLICY, MAX_DRIFT_FINDINGS } from './index.ts';

const base = {
  v: 1,
  gateway: { listen: { port: 7800 }, name: 'gw' },
  trustedIssuers: ['did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK'],
  upstreams: [{ name: 'fs', transport: 'stdio', command: 'node', args: ['fs.js'] }],
};
const config = (over: Record<string, unknown> = {}, env: NodeJS.ProcessEnv = {}) => resolveConfig({ ...base, ...over }, { baseDir: '/tmp', env });

t.test('the digest is stable, ignores where values came from, and moves with any field', async (t) => {
  t.equal(configDigest(config()), configDigest(config()));
  t.match(configDigest(config()), /^[0-9a-f]{64}$/);
  const fromEnv = config({}, { TALOS_GATEWAY_PORT: '7800' });
  t.ok(fromEnv.overrides.length > 0);
  t.equal(configDigest(fromEnv), configDigest(config()), 'the same values from the environment give the same digest');
  t.not(configDigest(config({ limits: { defaultCost: 2 } })), configDigest(config()));
  t.not(configDigest(config({ gateway: { listen: { port: 7801 }, name: 'gw' } })), configDigest(config()));
});

t.test('differences are found by section; the order of trusted issuers does not matter', async (t) => {
  t.same(diffConfig(config(), config()), []);
  const two = ['did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', 'did:key:z6MkjchhfUsD6mmvni8mCdXHw216Xrm9bQe2mBH1P5RDjVJG'];
  t.same(diffConfig(config({ trustedIssuers: two }), config({ trustedIssuers: [...two].reverse() })), []);
  const d = diffConfig(
    config(),
    config({
      trustedIssuers: two,
      upstreams: [
        { name: 'fs', transport: 'stdio', command: 'node', args: ['fs.js', '--ro'] },
        { name: 'mem', transport: 'stdio', command: 'node', args: ['mem.js'] },
      ],
    }),
  );
  t.same(d.map((x) => x.subject), ['trustedIssuers', 'upstreams.fs', 'upstreams.mem']);
  const added = d.find((x) => x.subject === 'upstreams.mem')!;
  t.equal(added.running, undefined, 'an added upstream has no running value');
  t.match(added.declared, /^[0-9a-f]{16}$/);
  t.same(Object.keys(configSections(config())).sort(), ['audit', 'breaker', 'gateway', 'limits', 'pins', 'redis', 'trustedIssuers', 'upstreams.fs']);
});

t.test('the policy decides: report everything, or reconcile what can change while running', async (t) => {
  const diffs = diffConfig(config(), config({ gateway: { listen: { port: 1 }, name: 'gw' }, limits: { defaultCost: 3 }, redis: { url: 'redis://x' } }));
  const tools = [{ upstream: 'fs', tool: 'read', pinned: 'a'.repeat(64), seen: 'b'.repeat(64) }];
  const reported = planDrift(diffs, tools, DEFAULT_DRIFT_POLICY);
  t.same(
    reported.map((f) => [f.kind, f.subject, f.action]),
    [
      ['config', 'gateway', 'restart_required'],
      ['config', 'limits', 'reported'],
      ['config', 'redis', 'restart_required'],
      ['tool', 'fs/read', 'reported'],
    ],
  );
  t.same(reported[3], { kind: 'tool', subject: 'fs/read', running: 'b'.repeat(16), declared: 'a'.repeat(16), action: 'reported' });
  const reconciled = planDrift(diffs, tools, { config: 'reconcile', tools: 'reconcile' });
  t.same(reconciled.map((f) => f.action), ['restart_required', 'reconciled', 'restart_required', 'reconciled']);
  const many = Array.from({ length: MAX_DRIFT_FINDINGS + 10 }, (_, i) => ({ upstream: 'fs', tool: `t${i}`, pinned: 'a', seen: 'b' }));
  t.equal(planDrift([], many, DEFAULT_DRIFT_POLICY).length, MAX_DRIFT_FINDINGS, 'findings are bounded');
});
