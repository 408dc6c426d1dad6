import t from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer, ResourceTemplate } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SubscribeRequestSchema, UnsubscribeRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { AuditLog } from '../audit/log.ts';
import { createHasher } from '../audit/merkle.ts';
import type { AuditEvent } from '../audit/event.ts';
import { CapabilityChecker, MemoryRevocationSource, encodeToken, mintRevocation, mintToken, type Grant } from '../capability/index.ts';
import { resolveConfig } from '../config/config.ts';
import { createCryptoProvider } from '../crypto/index.ts';
import { fromUtf8 } from '../encoding/bytes.ts';
import { generateIdentity } from '../identity/index.ts';
import { MemoryBudgetLedger, MemoryRateLimiter } from '../limits/memory.ts';
import { RedisRateLimiter, connectRedis } from '../limits/redis.ts';
import { SqliteAuditStore } from '../store/audit-sqlite.ts';
import { RPC_ERRORS } from './errors.ts';
import { CAPABILITY_META_KEY } from './meta.ts';
import { GatewayPipeline, sha256b64u, type PipelinePorts, type RoutedTool, type ToolRouter } from './pipeline.ts';
import type { RpcRequest, RpcResponse } from './jsonrpc.ts';
import type { RelayUpstream } from './relay.ts';
import { UpstreamConnection } from './upstream-connection.ts';
import { FilePinStore } from './pinning.ts';
import { UpstreamActor } from '../../actors/upstream/index.ts';

// The pipeline with real parts: capability checker, in-process limits, an SQLite audit log and
// an SDK McpServer upstream over InMemoryTransport that records what it receives.
const crypto = createCryptoProvider();
const issuer = generateIdentity(crypto);
const gateway = generateIdentity(crypto);
const agent = generateIdentity(crypto);
const received: unknown[] = [];

const server = new McpServer({ name: 'fixture', version: '1' });
server.registerTool('echo', { description: 'echo', inputSchema: { message: z.string() } }, async ({ message }, extra) => {
  received.push(extra._meta ?? null);
  return { content: [{ type: 'text', text: message }] };
});
server.registerTool('fail', { description: 'tool error', inputSchema: {} }, async () => ({ isError: true, content: [{ type: 'text', text: 'no' }] }));
const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
await server.connect(serverSide);
const conn = new UpstreamConnection('fixture', () => clientSide);
await conn.open();
t.teardown(() => conn.close());
const listed = await conn.listTools();

let driftName = 'rugged';
let upstreamDown = false;
const router: ToolRouter = {
  tools: () => listed.map((d) => ({ name: d.name, upstream: 'fixture', upstreamName: d.name, definition: d }) as RoutedTool),
  resolve(name) {
    if (name === driftName) return 'drift';
    const d = listed.find((x) => x.name === name);
    if (!d) return undefined;
    return {
      tool: { name, upstream: 'fixture', upstreamName: name, definition: d },
      call: async (method, params) => {
        if (upstreamDown) {
          const { TunnelError } = await import('./errors.ts');
          throw new TunnelError('upstream_unavailable', 'down', { upstream: 'fixture' });
        }
        return conn.request(method, params, 5000);
      },
    };
  },
};

const store = new SqliteAuditStore({ path: ':memory:', hasher: createHasher((d) => crypto.sha256(d)) });
const log = new AuditLog(store, createHasher((d) => crypto.sha256(d)));
t.teardown(() => store.close());
const limits = resolveConfig(
  { v: 1, gateway: { listen: { port: 0 } }, trustedIssuers: [], upstreams: [{ name: 'x', transport: 'http', url: 'http://x' }], limits: { budget: { perAgent: 3 }, tools: { echo: { cost: 1 } }, defaultCost: 0 } },
  { baseDir: '.' },
).limits;

function ports(over: Partial<PipelinePorts> = {}): PipelinePorts {
  return {
    authorizer: new CapabilityChecker({ crypto, audience: gateway.did, trustedRoots: [issuer.did] }),
    audit: { append: (e: AuditEvent) => log.appendEvents([e]) },
    rate: new MemoryRateLimiter(),
    budget: new MemoryBudgetLedger(),
    limits,
    router,
    gatewayDid: gateway.did,
    ...over,
  };
}
const nowS = Math.floor(Date.now() / 1000);
const token = (grants: Grant[]) => encodeToken(mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: agent.did, aud: gateway.did, grants, nbf: nowS - 5, exp: nowS + 600 }));
const all = token([{ method: 'tools/call' }]);
let id = 0;
const req = (method: string, params?: Record<string, unknown>): RpcRequest => ({ jsonrpc: '2.0', id: ++id, method, ...(params ? { params } : {}) });
const call = (name: string, args: Record<string, unknown> = {}, tok: string | null = all, meta: Record<string, unknown> = {}) =>
  req('tools/call', { name, arguments: args, _meta: { ...meta, ...(tok ? { [CAPABILITY_META_KEY]: tok } : {}) } });
const ctx = { did: agent.did, msgHash: sha256b64u('frame') };
const reason = (r: RpcResponse) => ('error' in r ? (r.error.data as { talos?: { reason?: string } })?.talos?.reason : 'ok');
async function lastEvent(): Promise<AuditEvent> {
  const head = await store.head();
  return JSON.parse(fromUtf8((await store.readLeaf(head.size - 1))!)) as AuditEvent;
}

t.test('initialize and ping are answered locally and audited', async (t) => {
  const p = new GatewayPipeline(ports());
  const init = await p.handle(ctx, req('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } }));
  t.match(init, { result: { protocolVersion: '2025-06-18', capabilities: { tools: {} } } });
  t.match(await lastEvent(), { kind: 'request', method: 'initialize', decision: 'allow', reason: 'local', from: agent.did, to: gateway.did });
  t.same((await p.handle(ctx, req('ping'))) , { jsonrpc: '2.0', id, result: {} });
  t.equal(reason(await p.handle(ctx, req('tasks/list', { _meta: { [CAPABILITY_META_KEY]: all } }))), 'method_not_supported');
});

t.test('an allowed call is audited before it is forwarded, without any talos _meta key', async (t) => {
  const events: AuditEvent[] = [];
  const p = new GatewayPipeline(ports({ audit: { append: async (e) => void events.push(e) } }));
  received.length = 0;
  const r = await p.handle(ctx, call('echo', { message: 'hi' }, all, { progressToken: 'p1', 'talos/x': 1, 'TALOS.y': 2 }));
  t.same('result' in r && r.result.content, [{ type: 'text', text: 'hi' }]);
  t.same(received, [{ progressToken: 'p1' }], 'the upstream saw only the foreign _meta key');
  t.same(events.map((e) => [e.kind, e.decision ?? null, e.reason]), [['request', 'allow', 'granted'], ['response', null, 'ok']]);
  t.equal(events[0]!.token_id?.length, 22);
});

t.test('refusals name their reason, are audited as denials, and reach no upstream', async (t) => {
  const events: AuditEvent[] = [];
  const p = new GatewayPipeline(ports({ audit: { append: async (e) => void events.push(e) } }));
  received.length = 0;
  const cases: [RpcRequest, string, number][] = [
    [call('echo', { message: 'x' }, null), 'capability_missing', RPC_ERRORS.unauthorized],
    [call('echo', { message: 'x' }, token([{ method: 'tools/call', tool: 'fail' }])), 'no_matching_grant', RPC_ERRORS.unauthorized],
    [call('echo', { message: 'x' }, token([{ method: 'tools/call', tool: 'echo', args: { message: { eq: 'y' } } }])), 'arg_violation', RPC_ERRORS.unauthorized],
    [call('echo', { message: 'x' }, 'garbage'), 'malformed', RPC_ERRORS.unauthorized],
    [call('rugged'), 'tool_drift', RPC_ERRORS.tool_drift],
    [call('nope'), 'unknown_tool', -32602],
    [req('tools/call', { name: 'bad name\n', _meta: { [CAPABILITY_META_KEY]: all } }), 'invalid_tool_name', -32602],
    [req('tools/call', { name: 'echo', arguments: [1], _meta: { [CAPABILITY_META_KEY]: all } }), 'invalid_arguments', -32602],
  ];
  for (const [r, why, code] of cases) {
    const res = await p.handle(ctx, r);
    t.equal(reason(res), why);
    t.equal('error' in res && res.error.code, code);
    t.match('error' in res && res.error.message, new RegExp(`^talos: ${why}: `));
  }
  t.same(received, [], 'nothing was forwarded');
  t.same(events.map((e) => `${e.decision}:${e.reason}`), cases.map(([, why]) => `deny:${why}`));
  t.notOk(events.some((e) => e.tool === 'bad name\n'), 'a bad tool name is not written to the log');
});

t.test('budget: reserved before, refunded when the upstream is unreachable, exhausted with its own error', async (t) => {
  const budget = new MemoryBudgetLedger();
  const p = new GatewayPipeline(ports({ budget }));
  upstreamDown = true;
  const down = await p.handle(ctx, call('echo', { message: 'x' }));
  t.equal(reason(down), 'upstream_unavailable');
  t.equal(await budget.remaining(agent.did, 3), 3, 'refunded');
  upstreamDown = false;
  for (let i = 0; i < 3; i++) t.equal(reason(await p.handle(ctx, call('echo', { message: 'x' }))), 'ok');
  const r = await p.handle(ctx, call('echo', { message: 'x' }));
  t.equal(reason(r), 'budget_exhausted');
  t.match('error' in r && r.error.data, { talos: { remaining: 0, cost: 1 } });
  t.equal(reason(await p.handle(ctx, call('fail'))), 'ok', 'a free tool (cost 0) still passes; its tool error is a result');
});

t.test('a circuit that refuses: at once, no rate token, no budget, one audit entry; an admitted call releases its admission however it ends', async (t) => {
  const events: AuditEvent[] = [];
  const budget = new MemoryBudgetLedger();
  const limiter = new MemoryRateLimiter();
  let takes = 0;
  const rate = { kind: limiter.kind, close: () => limiter.close(), take: (...a: Parameters<MemoryRateLimiter['take']>) => (takes++, limiter.take(...a)) };
  let refused: { retryAfterMs?: number } | undefined = { retryAfterMs: 150 };
  let admitted = 0;
  let released = 0;
  const breakered: ToolRouter = {
    tools: router.tools,
    resolve(name) {
      const r = router.resolve(name);
      if (!r || r === 'drift') return r;
      const admit = () => (refused ? { refused, release: () => t.fail('a refusal has nothing to release') } : (admitted++, { release: () => void released++ }));
      return { ...r, admit };
    },
  };
  const p = new GatewayPipeline(ports({ router: breakered, budget, rate, audit: { append: async (e) => void events.push(e) } }));
  received.length = 0;
  for (let i = 0; i < 3; i++) {
    const r = await p.handle(ctx, call('echo', { message: 'x' }));
    t.equal(reason(r), 'upstream_unavailable');
    t.match('error' in r && r.error, { code: RPC_ERRORS.upstream_unavailable, message: /circuit open/, data: { talos: { upstream: 'fixture', breaker: 'open', retryAfterMs: 150 } } });
  }
  refused = {}; // half-open, another call holds the trial
  const behind = await p.handle(ctx, call('echo', { message: 'x' }));
  t.equal(reason(behind), 'upstream_unavailable');
  t.notOk('error' in behind && 'retryAfterMs' in (behind.error.data as { talos: object }).talos, 'no hint while nobody knows');
  t.same(received, [], 'nothing reached the upstream');
  t.equal(takes, 0, 'no rate token taken');
  t.equal(await budget.remaining(agent.did, 3), 3, 'no budget reserved');
  t.same(events.map((e) => `${e.kind}:${e.decision}:${e.reason}:${e.tool}`), Array(4).fill('request:deny:upstream_unavailable:echo'), 'one entry per refusal');
  t.ok(events.every((e) => e.token_id?.length === 22), 'naming the token');

  refused = undefined;
  t.equal(reason(await p.handle(ctx, call('echo', { message: 'x' }))), 'ok', 'admitted: forwarded');
  for (let i = 0; i < 2; i++) t.equal(reason(await p.handle(ctx, call('echo', { message: 'x' }))), 'ok');
  t.equal(reason(await p.handle(ctx, call('echo', { message: 'x' }))), 'budget_exhausted', 'admitted, then refused further on');
  upstreamDown = true;
  t.equal(reason(await p.handle(ctx, call('fail'))), 'upstream_unavailable', 'admitted, and the upstream failed');
  upstreamDown = false;
  t.equal(admitted, 5);
  t.equal(released, 5, 'every admission released, whichever way its call ended');
});

t.test('an audit that fails refuses the call and refunds it; a limits store that fails refuses', async (t) => {
  const budget = new MemoryBudgetLedger();
  received.length = 0;
  const p = new GatewayPipeline(ports({ budget, audit: { append: async () => { throw new Error('disk full'); } } }));
  const r = await p.handle(ctx, call('echo', { message: 'x' }));
  t.equal(reason(r), 'audit_unavailable');
  t.same(received, [], 'not forwarded without an audit record');
  t.equal(await budget.remaining(agent.did, 3), 3, 'refunded');
  const dead = connectRedis('redis://127.0.0.1:1');
  dead.options.maxRetriesPerRequest = 0;
  t.teardown(() => dead.disconnect());
  const q = new GatewayPipeline(ports({ rate: new RedisRateLimiter(dead) }));
  t.equal(reason(await q.handle(ctx, call('echo', { message: 'x' }))), 'limits_unavailable');
  t.match(await lastEvent(), { decision: 'deny', reason: 'limits_unavailable' });
});

t.test('tools/list shows what the token grants, including argument-constrained tools', async (t) => {
  const p = new GatewayPipeline(ports());
  const list = async (tok?: string) => p.handle(ctx, req('tools/list', tok ? { _meta: { [CAPABILITY_META_KEY]: tok } } : {}));
  const names = (r: RpcResponse) => ('result' in r ? (r.result.tools as { name: string }[]).map((x) => x.name).sort() : reason(r));
  t.same(names(await list(all)), ['echo', 'fail']);
  t.same(names(await list(token([{ method: 'tools/call', tool: 'echo', args: { message: { eq: 'a' } } }]))), ['echo']);
  t.same(names(await list(token([{ method: 'tools/list' }]))), [], 'no tools/call grant: an empty list');
  t.equal(names(await list()), 'capability_missing');
  const other = generateIdentity(crypto);
  const stolen = encodeToken(mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: other.did, aud: gateway.did, grants: [{ method: 'tools/call' }], nbf: nowS - 5, exp: nowS + 600 }));
  t.equal(names(await list(stolen)), 'wrong_subject');
});

t.test('the rate limit refuses with retryAfterMs', async (t) => {
  const p = new GatewayPipeline(ports({ limits: { ...limits, budget: undefined, tools: { echo: { rate: { capacity: 1, refillPerSecond: 0.5 } } } } }));
  t.equal(reason(await p.handle(ctx, call('echo', { message: 'x' }))), 'ok');
  const r = await p.handle(ctx, call('echo', { message: 'x' }));
  t.equal(reason(r), 'rate_limited');
  t.ok('error' in r && (r.error.data as { talos: { retryAfterMs: number } }).talos.retryAfterMs > 1000);
  driftName = 'rugged';
});

// ---- Relay beyond tools: two real upstream actors (SDK McpServers over InMemoryTransport) ----
type Actor = UpstreamActor;

/** What each fixture server received: the method and its _meta, per request. */
const seen: { server: string; method: string; meta: unknown }[] = [];
const servers: Record<string, McpServer> = {};
function relayServer(name: string): McpServer {
  const s = new McpServer({ name, version: '1' }, { capabilities: { logging: {}, resources: { subscribe: true, listChanged: true }, prompts: { listChanged: true } } });
  s.registerPrompt('greet', { description: `greet from ${name}`, argsSchema: { who: z.string() } }, ({ who }, extra) => {
    seen.push({ server: name, method: 'prompts/get', meta: extra._meta ?? null });
    return { messages: [{ role: 'user', content: { type: 'text', text: `hello ${who} from ${name}` } }] };
  });
  s.registerResource(`${name}-doc`, `${name}://docs/readme`, { mimeType: 'text/plain' }, async (uri, extra) => {
    seen.push({ server: name, method: 'resources/read', meta: extra._meta ?? null });
    return { contents: [{ uri: uri.href, text: `readme of ${name}` }] };
  });
  s.registerResource(`${name}-item`, new ResourceTemplate(`${name}://items/{id}`, { list: undefined, complete: { id: (v) => ['1', '2', '10'].filter((x) => x.startsWith(v)) } }), {}, async (uri) => ({
    contents: [{ uri: uri.href, text: `item ${uri.href}` }],
  }));
  s.server.setRequestHandler(SubscribeRequestSchema, async (r) => {
    seen.push({ server: name, method: 'resources/subscribe', meta: r.params._meta ?? null });
    return {};
  });
  s.server.setRequestHandler(UnsubscribeRequestSchema, async () => {
    seen.push({ server: name, method: 'resources/unsubscribe', meta: null });
    return {};
  });
  servers[name] = s;
  return s;
}
const relayConfig = resolveConfig(
  { v: 1, gateway: { listen: { port: 0 } }, trustedIssuers: [], upstreams: [{ name: 'alpha', transport: 'http', url: 'http://alpha' }, { name: 'beta', transport: 'http', url: 'http://beta' }] },
  { baseDir: '.' },
);
const relayPins = new FilePinStore();
const actors: Actor[] = [];
for (const u of relayConfig.upstreams) {
  const transport = () => {
    const [c, s] = InMemoryTransport.createLinkedPair();
    void relayServer(u.name).connect(s);
    return c;
  };
  const a = new UpstreamActor({ config: u, breaker: relayConfig.breaker, pins: relayPins, transport });
  await a.start();
  actors.push(a);
}
t.teardown(() => Promise.all(actors.map((a) => a.stop())));
const relayRouter: ToolRouter = { tools: () => [], resolve: () => undefined, upstreams: () => actors };
const withToken = (tok: string, params: Record<string, unknown> = {}) => ({ ...params, _meta: { ...((params._meta as object) ?? {}), [CAPABILITY_META_KEY]: tok } });
/** Waits (polling) until `cond` holds: notifications arrive asynchronously. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}
const resultOf = (r: RpcResponse) => ('result' in r ? r.result : t.fail(`refused: ${JSON.stringify(r)}`)) as Record<string, unknown>;

t.test('initialize advertises the capabilities the upstreams offer, merged', async (t) => {
  const p = new GatewayPipeline(ports({ router: relayRouter }));
  const caps = resultOf(await p.handle(ctx, req('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } }))).capabilities as Record<string, unknown>;
  t.same(caps.prompts, { listChanged: true });
  t.same(caps.resources, { listChanged: true, subscribe: true });
  t.same(caps.logging, {});
  t.ok(caps.completions, 'the servers complete prompt and template arguments');
  t.same(resultOf(await new GatewayPipeline(ports()).handle(ctx, req('initialize'))).capabilities, { tools: { listChanged: false } }, 'a router without upstreams: tools only');
});

t.test('prompts: routed by name (first configured wins), authorized with their arguments, listed as granted', async (t) => {
  const p = new GatewayPipeline(ports({ router: relayRouter }));
  const tok = token([{ method: 'prompts/get', tool: 'greet', args: { who: { in: ['ada', 'alan'] } } }]);
  const list = resultOf(await p.handle(ctx, req('prompts/list', withToken(tok)))).prompts as { name: string; description: string }[];
  t.same(list.map((x) => [x.name, x.description]), [['greet', 'greet from alpha']], 'one greet, alpha\'s');
  t.same(resultOf(await p.handle(ctx, req('prompts/list', withToken(token([{ method: 'tools/call' }]))))).prompts, [], 'no prompt grant: nothing listed');

  seen.length = 0;
  const got = resultOf(await p.handle(ctx, req('prompts/get', withToken(tok, { name: 'greet', arguments: { who: 'ada' }, _meta: { progressToken: 3, 'talos/x': 1 } }))));
  t.match(got, { messages: [{ content: { text: 'hello ada from alpha' } }] });
  t.same(seen, [{ server: 'alpha', method: 'prompts/get', meta: { progressToken: 3 } }], 'alpha answered; no talos key reached it');
  t.match(await lastEvent(), { kind: 'response', from: 'alpha', method: 'prompts/get', tool: 'greet', reason: 'ok' });

  const outside = await p.handle(ctx, req('prompts/get', withToken(tok, { name: 'greet', arguments: { who: 'eve' } })));
  t.equal(reason(outside), 'arg_violation');
  t.match((outside as { error: { data: unknown } }).error.data, { talos: { arg: 'who' } });
  t.match(await lastEvent(), { kind: 'request', method: 'prompts/get', tool: 'greet', decision: 'deny', reason: 'arg_violation' });
  t.equal(reason(await p.handle(ctx, req('prompts/get', withToken(tok, { name: 'other' })))), 'no_matching_grant');
  t.equal(reason(await p.handle(ctx, req('prompts/get', withToken(token([{ method: 'prompts/get' }]), { name: 'nope' })))), 'unknown_prompt');
  t.equal(seen.length, 1, 'no refusal reached an upstream');
});

t.test("relayed requests: an upstream actor's open breaker refuses them at once, with its reset time left", async (t) => {
  const p = new GatewayPipeline(ports({ router: relayRouter }));
  const tok = token([{ method: 'prompts/get', tool: 'greet' }]);
  const breaker = (actors[0] as unknown as { breaker: { open(): void; close(): void } }).breaker;
  breaker.open();
  t.teardown(() => breaker.close());
  seen.length = 0;
  const r = await p.handle(ctx, req('prompts/get', withToken(tok, { name: 'greet', arguments: { who: 'ada' } })));
  t.equal(reason(r), 'upstream_unavailable');
  const data = ('error' in r ? (r.error.data as { talos: Record<string, unknown> }).talos : {}) as { breaker?: string; upstream?: string; retryAfterMs?: number };
  t.match(data, { breaker: 'open', upstream: 'alpha' });
  t.ok(data.retryAfterMs! > relayConfig.breaker.resetTimeoutMs - 500 && data.retryAfterMs! <= relayConfig.breaker.resetTimeoutMs, `retryAfterMs ${data.retryAfterMs}: the reset timeout, less the moment since it opened`);
  t.same(seen, [], 'alpha was not called');
  t.match(await lastEvent(), { kind: 'request', method: 'prompts/get', decision: 'deny', reason: 'upstream_unavailable' });
  breaker.close();
  t.match(resultOf(await p.handle(ctx, req('prompts/get', withToken(tok, { name: 'greet', arguments: { who: 'ada' } })))), { messages: [{ content: { text: 'hello ada from alpha' } }] }, 'closed: served again');
});

t.test('resources: routed to the upstream that listed the uri or whose template matches; reads need a grant on the uri', async (t) => {
  const p = new GatewayPipeline(ports({ router: relayRouter }));
  const tok = token([{ method: 'resources/read', args: { uri: { glob: 'beta:/**' } } }]);
  const list = resultOf(await p.handle(ctx, req('resources/list', withToken(tok)))).resources as { uri: string }[];
  t.same(list.map((r) => r.uri), ['beta://docs/readme'], 'only what the grant allows');
  const templates = resultOf(await p.handle(ctx, req('resources/templates/list', withToken(tok)))).resourceTemplates as { uriTemplate: string }[];
  t.same(templates.map((x) => x.uriTemplate), ['alpha://items/{id}', 'beta://items/{id}'], 'templates: any resources/read grant shows them');

  seen.length = 0;
  t.match(resultOf(await p.handle(ctx, req('resources/read', withToken(tok, { uri: 'beta://docs/readme', _meta: { 'TALOS.z': 1 } })))), { contents: [{ text: 'readme of beta' }] });
  t.same(seen, [{ server: 'beta', method: 'resources/read', meta: null }], 'routed to beta by its listing, no talos key');
  t.match(resultOf(await p.handle(ctx, req('resources/read', withToken(tok, { uri: 'beta://items/7' })))), { contents: [{ text: 'item beta://items/7' }] }, 'by template');
  t.equal(reason(await p.handle(ctx, req('resources/read', withToken(tok, { uri: 'alpha://docs/readme' })))), 'arg_violation');
  t.equal(reason(await p.handle(ctx, req('resources/read', withToken(tok, { uri: 'beta:/elsewhere' })))), 'unknown_resource');
  t.equal(reason(await p.handle(ctx, req('resources/read', { uri: 'beta://docs/readme' }))), 'capability_missing');
  t.equal(reason(await p.handle(ctx, req('resources/read', withToken(tok, { uri: 7 })))), 'invalid_uri');
});

/** The relay upstreams, wrapped to count every listing re-read and every call that reaches them. */
const upstreamTraffic: string[] = [];
const countingUpstreams: RelayUpstream[] = actors.map((a) => ({
  name: a.name,
  capabilities: () => a.capabilities(),
  prompts: () => a.prompts(),
  prompt: (name) => a.prompt(name),
  listed: (listing) => a.listed(listing),
  relist: (listing) => {
    upstreamTraffic.push(`${a.name} ${listing}`);
    return a.relist(listing);
  },
  call: (method, params, signal, onProgress) => {
    upstreamTraffic.push(`${a.name} ${method}`);
    return a.call(method, params, signal, onProgress);
  },
  onNotification: (listener) => a.onNotification(listener),
}));
const countingRouter: ToolRouter = { tools: () => [], resolve: () => undefined, upstreams: () => countingUpstreams };

t.test('resources/list and templates/list: a bad token is refused before any upstream is read', async (t) => {
  // Each event records how many upstream reads had happened when it was appended.
  const events: (AuditEvent & { reads: number })[] = [];
  const revocations = new MemoryRevocationSource();
  const authorizer = new CapabilityChecker({ crypto, audience: gateway.did, trustedRoots: [issuer.did], revocations });
  const p = new GatewayPipeline(ports({ router: countingRouter, authorizer, audit: { append: async (e) => void events.push({ ...e, reads: upstreamTraffic.length }) } }));
  const grants: Grant[] = [{ method: 'resources/read' }];
  const mint = (o: { sub?: string; aud?: string; nbf?: number; exp?: number }) =>
    mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: o.sub ?? agent.did, aud: o.aud ?? gateway.did, grants, nbf: o.nbf ?? nowS - 5, exp: o.exp ?? nowS + 600 });
  const other = generateIdentity(crypto);
  const revoked = mint({});
  await revocations.publish(mintRevocation(crypto, issuer.sig.secretKey, revoked.id, nowS));
  const bad: [string, string][] = [
    ['garbage', 'malformed'],
    [encodeToken(mint({ sub: other.did })), 'wrong_subject'],
    [encodeToken(mint({ aud: other.did })), 'wrong_audience'],
    [encodeToken(mint({ nbf: nowS - 60, exp: nowS - 30 })), 'expired'],
    [encodeToken(revoked), 'revoked'],
  ];
  upstreamTraffic.length = 0;
  for (const method of ['resources/list', 'resources/templates/list']) {
    for (const [tok, why] of bad) {
      const r = await p.handle(ctx, req(method, withToken(tok)));
      t.equal(reason(r), why, `${method}: ${why}`);
      t.match('error' in r && r.error, { code: RPC_ERRORS.unauthorized, message: new RegExp(`^talos: ${why}: `) });
    }
    t.equal(reason(await p.handle(ctx, req(method))), 'capability_missing');
  }
  t.same(upstreamTraffic, [], 'no refused listing reached an upstream');
  t.same(events.map((e) => `${e.method} ${e.decision}:${e.reason}`), ['resources/list', 'resources/templates/list'].flatMap((m) => [...bad.map(([, why]) => `${m} deny:${why}`), `${m} deny:capability_missing`]));
});

t.test('resources/list and templates/list: rate limited before any upstream is read; the decision is audited first', async (t) => {
  const events: (AuditEvent & { reads: number })[] = [];
  const p = new GatewayPipeline(ports({
    router: countingRouter,
    limits: { ...limits, rate: { capacity: 2, refillPerSecond: 0.001 } },
    audit: { append: async (e) => void events.push({ ...e, reads: upstreamTraffic.length }) },
  }));
  const tok = token([{ method: 'resources/read', args: { uri: { glob: 'beta:/**' } } }]);
  const uris = (r: RpcResponse) => ('result' in r ? (r.result.resources as { uri: string }[]).map((x) => x.uri) : reason(r));
  upstreamTraffic.length = 0;
  t.same(uris(await p.handle(ctx, req('resources/list', withToken(tok)))), ['beta://docs/readme'], 'a valid token lists what it grants');
  t.same(uris(await p.handle(ctx, req('resources/list', withToken(tok)))), ['beta://docs/readme']);
  t.same(upstreamTraffic, ['alpha resources', 'beta resources', 'alpha resources', 'beta resources'], 'each allowed listing re-read every upstream once');
  const third = await p.handle(ctx, req('resources/list', withToken(tok)));
  t.equal(reason(third), 'rate_limited', 'the third is over the capacity of 2');
  t.equal('error' in third && third.error.code, RPC_ERRORS.rate_limited);
  t.equal(upstreamTraffic.length, 4, 'the rate-limited listing read no upstream');
  // templates/list has its own bucket.
  for (let i = 0; i < 2; i++) {
    t.same(resultOf(await p.handle(ctx, req('resources/templates/list', withToken(tok)))).resourceTemplates, [{ name: 'alpha-item', uriTemplate: 'alpha://items/{id}' }, { name: 'beta-item', uriTemplate: 'beta://items/{id}' }]);
  }
  t.equal(reason(await p.handle(ctx, req('resources/templates/list', withToken(tok)))), 'rate_limited');
  t.same(upstreamTraffic.slice(4), ['alpha templates', 'beta templates', 'alpha templates', 'beta templates'], 'the rate-limited templates/list read no upstream');
  t.same(events.map((e) => [e.method, `${e.decision}:${e.reason}`, e.reads]), [
    ['resources/list', 'allow:granted', 0],
    ['resources/list', 'allow:granted', 2],
    ['resources/list', 'deny:rate_limited', 4],
    ['resources/templates/list', 'allow:granted', 4],
    ['resources/templates/list', 'allow:granted', 6],
    ['resources/templates/list', 'deny:rate_limited', 8],
  ], 'every decision was audited before the upstreams were read');
});

t.test('completion: only for a prompt or templates the token grants', async (t) => {
  const p = new GatewayPipeline(ports({ router: relayRouter }));
  const tok = token([{ method: 'prompts/get', tool: 'greet', args: { who: { eq: 'ada' } } }]);
  const ref = { type: 'ref/resource', uri: 'beta://items/{id}' };
  t.equal(reason(await p.handle(ctx, req('completion/complete', withToken(tok, { ref, argument: { name: 'id', value: '1' } })))), 'no_matching_grant');
  const r = resultOf(await p.handle(ctx, req('completion/complete', withToken(token([{ method: 'resources/read', args: { uri: { glob: 'beta:/**' } } }]), { ref, argument: { name: 'id', value: '1' } }))));
  t.same((r.completion as { values: string[] }).values, ['1', '10']);
  t.equal(reason(await p.handle(ctx, req('completion/complete', withToken(tok, { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: 'a' } })))), 'ok', 'a grant naming the prompt (arguments constrained) is enough');
  t.equal(reason(await p.handle(ctx, req('completion/complete', withToken(tok, { ref: { type: 'ref/prompt', name: 'other' }, argument: { name: 'who', value: 'a' } })))), 'no_matching_grant');
  t.equal(reason(await p.handle(ctx, req('completion/complete', withToken(tok, { ref: { type: 'ref/nothing' } })))), 'invalid_reference');
});

t.test('notifications: updates only to subscribed sessions still allowed to read; logs by level; list changes to all', async (t) => {
  const p = new GatewayPipeline(ports({ router: relayRouter }));
  const got: Record<string, { method: string; params?: Record<string, unknown> }[]> = { a: [], b: [] };
  p.attachSession({ sid: 'a', did: agent.did, notify: (n) => got.a!.push(n) });
  const detachB = p.attachSession({ sid: 'b', did: agent.did, notify: (n) => got.b!.push(n) });
  const readBeta = token([{ method: 'resources/read', args: { uri: { glob: 'beta:/**' } } }, { method: 'logging/setLevel' }]);
  const a = { ...ctx, sid: 'a' };
  t.equal(reason(await p.handle(ctx, req('resources/subscribe', withToken(readBeta, { uri: 'beta://docs/readme' })))), 'notifications_unavailable', 'a request without a session cannot subscribe');
  t.equal(reason(await p.handle(a, req('resources/subscribe', withToken(readBeta, { uri: 'alpha://docs/readme' })))), 'arg_violation', 'only a readable uri');
  seen.length = 0;
  t.equal(reason(await p.handle(a, req('resources/subscribe', withToken(readBeta, { uri: 'beta://docs/readme' })))), 'ok');
  t.same(seen, [{ server: 'beta', method: 'resources/subscribe', meta: null }]);
  await servers.beta!.server.sendResourceUpdated({ uri: 'beta://docs/readme' });
  await servers.beta!.server.sendResourceUpdated({ uri: 'beta://items/1' });
  await servers.alpha!.server.sendResourceUpdated({ uri: 'beta://docs/readme' });
  await servers.beta!.server.sendResourceUpdated({ uri: 'beta://docs/readme' });
  await until(() => got.a!.length >= 2);
  got.a!.pop();
  t.same(got.a, [{ jsonrpc: '2.0', method: 'notifications/resources/updated', params: { uri: 'beta://docs/readme' } }], 'only the subscribed uri, from its upstream');
  t.same(got.b, [], 'not to the other session');

  got.a!.length = 0;
  t.equal(reason(await p.handle(a, req('logging/setLevel', withToken(readBeta, { level: 'warning' })))), 'ok');
  t.equal(reason(await p.handle({ ...ctx, sid: 'b' }, req('logging/setLevel', withToken(token([{ method: 'logging/setLevel', args: { level: { eq: 'error' } } }]), { level: 'debug' })))), 'arg_violation');
  await servers.alpha!.server.sendLoggingMessage({ level: 'info', data: 'chatter' });
  await servers.alpha!.server.sendLoggingMessage({ level: 'error', data: 'bad' });
  await until(() => got.a!.length >= 1);
  t.same(got.a, [{ jsonrpc: '2.0', method: 'notifications/message', params: { level: 'error', data: 'bad' } }], 'at or above the level the session asked for');
  t.same(got.b, [], 'a session that set no level gets no logs');

  got.a!.length = 0;
  servers.alpha!.sendPromptListChanged();
  await until(() => got.a!.length >= 1 && got.b!.length >= 1);
  t.same(got.a, [{ jsonrpc: '2.0', method: 'notifications/prompts/list_changed' }]);
  t.same(got.b, [{ jsonrpc: '2.0', method: 'notifications/prompts/list_changed' }]);

  // The last session holding a uri unsubscribes upstream; a detached session gets nothing more.
  seen.length = 0;
  t.equal(reason(await p.handle(a, req('resources/unsubscribe', { uri: 'beta://docs/readme' }))), 'ok');
  await until(() => seen.length >= 1);
  t.same(seen.map((s) => s.method), ['resources/unsubscribe']);
  detachB();
  got.a!.length = 0;
  got.b!.length = 0;
  servers.beta!.sendResourceListChanged();
  await until(() => got.a!.length >= 1);
  t.same(got.b, []);
  t.same(got.a, [{ jsonrpc: '2.0', method: 'notifications/resources/list_changed' }]);
});

t.test('a prompt whose definition changed since it was pinned is withheld and refused', async (t) => {
  relayPins.set('alpha/prompts', 'greet', 'a'.repeat(64));
  await actors[0]!.refreshPrompts();
  const p = new GatewayPipeline(ports({ router: relayRouter }));
  const tok = token([{ method: 'prompts/get' }]);
  const list = resultOf(await p.handle(ctx, req('prompts/list', withToken(tok)))).prompts as { description: string }[];
  t.same(list, [], 'alpha\'s greet is withheld, and beta\'s is no substitute for it (routing would refuse it)');
  t.equal(reason(await p.handle(ctx, req('prompts/get', withToken(tok, { name: 'greet', arguments: { who: 'x' } })))), 'prompt_drift');
  t.match(await lastEvent(), { decision: 'deny', reason: 'prompt_drift', tool: 'greet' });
});

t.test('requests from a server to the gateway (sampling, roots, elicitation) are refused with a clear error', async (t) => {
  for (const method of ['sampling/createMessage', 'roots/list', 'elicitation/create']) {
    const err = await servers.beta!.server.request({ method, params: {} } as never, z.object({}).passthrough()).then(
      () => undefined,
      (e: unknown) => e as { code: number; message: string },
    );
    t.equal(err?.code, -32601, method);
    t.match(err?.message, /server-to-client requests are not relayed/, method);
  }
});
