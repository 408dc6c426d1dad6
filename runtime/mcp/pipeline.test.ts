import t from 'tap';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { AuditLog } from '../audit/log.ts';
import { createHasher } from '../audit/merkle.ts';
import type { AuditEvent } from '../audit/event.ts';
import { CapabilityChecker, encodeToken, mintToken, type Grant } from '../capability/index.ts';
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
import { UpstreamConnection } from './upstream-connection.ts';

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
  t.equal(reason(await p.handle(ctx, req('resources/list', { _meta: { [CAPABILITY_META_KEY]: all } }))), 'method_not_supported');
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
