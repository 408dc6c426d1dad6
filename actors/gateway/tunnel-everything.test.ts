import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { resolveConfig } from '../../runtime/config/config.ts';
import { decodeToken, mintRevocation } from '../../runtime/capability/index.ts';
import { RPC_ERRORS } from '../../runtime/mcp/errors.ts';
import { referenceServerScript } from '../../runtime/mcp/servers.ts';
import { startTestRedis } from '../../runtime/redis/test-server.ts';
import { recordingTransport, startKit } from './test-kit.ts';
import { refusal } from '../../runtime/system-test-kit.ts';

// The real server-everything and server-memory behind one gateway whose limits live in a real
// (private) Redis: echo, the environment tool, rate limits, budgets, and a crashing upstream.
const redis = await startTestRedis();
t.teardown(() => redis.stop());
const dir = mkdtempSync(join(tmpdir(), 'talos-everything-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const everything = { name: 'everything', transport: 'stdio', command: 'node', args: [referenceServerScript('server-everything'), 'stdio'] };
const memory = { name: 'memory', transport: 'stdio', command: 'node', args: [referenceServerScript('server-memory')], env: { MEMORY_FILE_PATH: join(dir, 'memory.jsonl') } };
const sent: string[] = [];
const everythingConfig = resolveConfig({ v: 1, gateway: { listen: { port: 0 } }, trustedIssuers: [], upstreams: [everything] }, { baseDir: dir }).upstreams[0]!;

const kit = await startKit({
  upstreams: [everything, memory],
  redisUrl: redis.url,
  limits: {
    rate: { capacity: 1000, refillPerSecond: 1000 },
    budget: { perAgent: 5 },
    defaultCost: 0,
    tools: {
      'get-sum': { rate: { capacity: 3, refillPerSecond: 0.01 } },
      'get-tiny-image': { cost: 2 },
    },
  },
  breaker: { volumeThreshold: 2, resetTimeoutMs: 400, errorThresholdPercentage: 50 },
  transports: { everything: recordingTransport(everythingConfig, sent) },
});
t.teardown(() => kit.close());

const grants = [
  { method: 'tools/call', tool: 'echo' },
  { method: 'tools/call', tool: 'get-env' },
  { method: 'tools/call', tool: 'get-sum' },
  { method: 'tools/call', tool: 'get-tiny-image' },
  { method: 'tools/call', tool: 'create_entities' },
  { method: 'tools/call', tool: 'read_graph' },
  { method: 'tools/call', tool: 'trigger-long-running-operation' },
];
const { client, token } = await kit.agent(grants);
t.equal(kit.gw.limits.kind, 'redis', 'limits run in Redis');
const text = (r: unknown) => ((r as { content: { text: string }[] }).content[0]!.text);

t.test('echo passes through', async (t) => {
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'hello through talos' } })), 'Echo: hello through talos');
});

t.test('no capability ever reaches the upstream', async (t) => {
  const env = text(await client.callTool({ name: 'get-env', arguments: {} }));
  t.notOk(env.includes(token), 'not in the upstream environment');
  t.notOk(/talos/i.test(env), 'nothing of ours in its environment');
  await client.callTool({ name: 'echo', arguments: { message: 'm' }, _meta: { progressToken: 7, 'talos/other': 'x', 'Talos.Y': 1 } });
  const calls = sent.filter((m) => m.includes('"tools/call"'));
  t.ok(calls.length >= 2);
  t.notOk(sent.some((m) => m.includes(token)), 'no message sent upstream contains the token');
  const metaKeys = calls.flatMap((m) => Object.keys((JSON.parse(m) as { params: { _meta?: object } }).params._meta ?? {}));
  t.same(metaKeys, ['progressToken'], 'no talos _meta key at all; the others are kept');
});

t.test('the token bucket refuses with a retry-after', async (t) => {
  for (let i = 0; i < 3; i++) t.equal(text(await client.callTool({ name: 'get-sum', arguments: { a: 1, b: i } })).includes(String(1 + i)), true);
  const r = await refusal(client.callTool({ name: 'get-sum', arguments: { a: 1, b: 1 } }));
  t.equal(r.code, RPC_ERRORS.rate_limited);
  t.equal(r.reason, 'rate_limited');
  t.ok((r.data.retryAfterMs as number) > 1000, 'retry after the refill of one token (100 s at 0.01/s)');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'other tool' } })), 'Echo: other tool', 'buckets are per tool');
});

t.test('the budget is reserved atomically and exhausts with its own error', async (t) => {
  // Budget 5, image cost 2: two calls pass (4), the third would need 2 with 1 left.
  await client.callTool({ name: 'get-tiny-image', arguments: {} });
  await client.callTool({ name: 'get-tiny-image', arguments: {} });
  const r = await refusal(client.callTool({ name: 'get-tiny-image', arguments: {} }));
  t.equal(r.code, RPC_ERRORS.budget_exhausted);
  t.same([r.reason, r.data.remaining, r.data.cost], ['budget_exhausted', 1, 2]);
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'free' } })), 'Echo: free', 'a free tool still works');
});

t.test('server-memory: state-changing calls pass through the same gateway', async (t) => {
  await client.callTool({ name: 'create_entities', arguments: { entities: [{ name: 'talos', entityType: 'project', observations: ['tunnel works'] }] } });
  t.match(text(await client.callTool({ name: 'read_graph', arguments: {} })), /tunnel works/);
});

t.test("the upstream's progress notifications reach the agent under its own token", async (t) => {
  const seen: number[] = [];
  const r = await client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 3 } }, undefined, {
    onprogress: (p) => void seen.push(p.progress),
  });
  t.match(text(r), /completed/i);
  // The SDK Client (on the gateway's side as on any client) handles a notification a microtask
  // after a response that arrived in the same read, so the last step can be dropped there.
  t.ok(seen.length >= 2, `progress relayed (${seen.join(', ')})`);
  t.same(seen, [...seen].sort((a, b) => a - b), 'in order');
  t.equal(seen[0], 1);
});

t.test('a request the agent cancels is aborted upstream and audited', async (t) => {
  const upstream = kit.gw.upstreams.find((u) => u.name === 'everything')!;
  const controller = new AbortController();
  const pending = client.callTool({ name: 'trigger-long-running-operation', arguments: { duration: 30, steps: 3 } }, undefined, { signal: controller.signal });
  await new Promise((r) => setTimeout(r, 300));
  controller.abort('user pressed stop');
  await t.rejects(pending);
  let cancelled = false;
  for (let i = 0; i < 50 && !cancelled; i++) {
    await new Promise((r) => setTimeout(r, 50));
    cancelled = (await kit.events()).some((e) => e.event.kind === 'response' && e.event.reason === 'cancelled');
  }
  t.ok(cancelled, 'the response event records the cancellation');
  t.ok(sent.some((m) => m.includes('notifications/cancelled')), 'the cancellation was forwarded upstream');
  t.equal(upstream.breakerState, 'closed', 'a cancellation is not an upstream failure');
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'still fine' } })), 'Echo: still fine');
});

t.test('an upstream that dies opens its breaker, then recovers', async (t) => {
  const upstream = kit.gw.upstreams.find((u) => u.name === 'everything')!;
  const pid = upstream.pid!;
  process.kill(pid, 'SIGKILL');
  const reasons: string[] = [];
  // Calls fail while the server is down; once failures dominate the breaker's window it opens.
  for (let i = 0; i < 200 && reasons.at(-1) !== 'open'; i++) {
    const r = await refusal(client.callTool({ name: 'echo', arguments: { message: 'x' } }));
    if (r.code !== RPC_ERRORS.upstream_unavailable) t.fail(`unexpected refusal ${r.reason}`);
    reasons.push(String(r.data.breaker ?? r.reason));
  }
  t.equal(reasons.at(-1), 'open', `the breaker opened (after ${reasons.length} failed calls)`);
  let echoed: string | undefined;
  for (let i = 0; i < 100 && echoed === undefined; i++) {
    await new Promise((r) => setTimeout(r, 100));
    try {
      echoed = text(await client.callTool({ name: 'echo', arguments: { message: 'back' } }));
    } catch {
      /* still recovering */
    }
  }
  t.equal(echoed, 'Echo: back', 'calls pass again');
  t.not(upstream.pid, pid, 'on a restarted server');
  t.equal(upstream.breakerState, 'closed');
});

t.test('a revocation published through Redis refuses the token on the next call', async (t) => {
  const other = await kit.agent([{ method: 'tools/call', tool: 'echo' }]);
  t.equal(text(await other.client.callTool({ name: 'echo', arguments: { message: 'before' } })), 'Echo: before');
  await kit.gw.revocations.publish(mintRevocation(kit.crypto, kit.issuer.sig.secretKey, decodeToken(other.token).id, Date.now()));
  let reason = '';
  for (let i = 0; i < 50 && reason !== 'revoked'; i++) {
    try {
      await other.client.callTool({ name: 'echo', arguments: { message: 'after' } });
      await new Promise((r) => setTimeout(r, 20));
    } catch (err) {
      reason = String(((err as McpError).data as { talos: { reason: string } }).talos.reason);
    }
  }
  t.equal(reason, 'revoked');
});

t.test('every call is audited with a verified inclusion proof; refunds on upstream failure', async (t) => {
  const events = (await kit.events()).map((e) => e.event);
  const denials = events.filter((e) => e.kind === 'request' && e.decision === 'deny').map((e) => e.reason);
  t.ok(denials.includes('rate_limited') && denials.includes('budget_exhausted'));
  t.ok(events.some((e) => e.kind === 'response' && e.reason === 'upstream_unavailable'), 'failed forwards are audited');
  t.ok(events.some((e) => e.kind === 'session_open'));
  t.equal(await kit.verifyAll(), events.length);
});
