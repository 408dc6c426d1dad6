import t from 'tap';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { z } from 'zod';
import { encodeToken, mintToken } from '../../runtime/capability/index.ts';
import { generateIdentity } from '../../runtime/identity/index.ts';
import { CAPABILITY_META_KEY } from '../../runtime/mcp/meta.ts';
import { sha256b64u } from '../../runtime/mcp/pipeline.ts';
import { startKit } from './test-kit.ts';

/** An MCP server in this process (the SDK's McpServer over its in-memory transport). */
function echoServer() {
  const [client, server] = InMemoryTransport.createLinkedPair();
  const mcp = new McpServer({ name: 'echo', version: '1.0.0' });
  mcp.registerTool('echo', { description: 'echoes', inputSchema: { message: z.string() } }, async ({ message }) => ({ content: [{ type: 'text', text: message }] }));
  void mcp.connect(server);
  return client;
}

const kit = await startKit({ upstreams: [{ name: 'mem', transport: 'http', url: 'http://unused.invalid/' }], transports: { mem: echoServer } });
t.teardown(() => kit.close());

t.test("uncached tokens arriving together are verified on the gateway's worker pool, then allowed", async (t) => {
  const nowS = Math.floor(Date.now() / 1000);
  const agents = Array.from({ length: 6 }, () => {
    const identity = generateIdentity(kit.crypto);
    const token = encodeToken(mintToken(kit.crypto, { issuerKey: kit.issuer.sig.secretKey, sub: identity.did, aud: kit.gw.did, grants: [{ method: 'tools/call', tool: 'echo' }], nbf: nowS - 5, exp: nowS + 600 }));
    return { did: identity.did, token };
  });
  t.equal(kit.gw.cryptoPool.started, undefined, 'no thread before it is needed');
  const answers = await Promise.all(
    agents.map((a, i) =>
      kit.gw.pipeline.handle({ did: a.did, msgHash: sha256b64u(`req ${i}`) }, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'echo', arguments: { message: `m${i}` }, _meta: { [CAPABILITY_META_KEY]: a.token } } }),
    ),
  );
  t.same(answers.map((r) => ('result' in r ? (r.result.content as { text: string }[])[0]!.text : r.error.message)), agents.map((_, i) => `m${i}`));
  t.ok(kit.gw.cryptoPool.started, 'the pool started');
  t.ok(kit.gw.cryptoPool.started!.stats.poolBatches >= 1, 'and verified the chains');
  t.equal(kit.gw.checker.stats.cacheMisses, agents.length, 'each chain verified once (then cached)');
  // A forged token is refused whichever thread looked at it.
  const forged = agents[0]!.token.replace(/.(?=.{10}$)/, (c) => (c === 'A' ? 'B' : 'A'));
  const [bad] = await Promise.all([
    kit.gw.pipeline.handle({ did: agents[0]!.did, msgHash: sha256b64u('forged') }, { jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'echo', arguments: { message: 'x' }, _meta: { [CAPABILITY_META_KEY]: forged } } }),
    kit.gw.pipeline.handle({ did: agents[1]!.did, msgHash: sha256b64u('other') }, { jsonrpc: '2.0', id: 98, method: 'tools/call', params: { name: 'echo', arguments: { message: 'y' }, _meta: { [CAPABILITY_META_KEY]: encodeToken(mintToken(kit.crypto, { issuerKey: kit.issuer.sig.secretKey, sub: agents[1]!.did, aud: kit.gw.did, grants: [{ method: 'tools/call', tool: 'echo' }], nbf: nowS - 5, exp: nowS + 600 })) } } }),
  ]);
  t.ok('error' in bad! && /talos: (malformed|bad_signature)/.test(bad.error.message), 'forged token refused');
});
