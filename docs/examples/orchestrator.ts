/**
 * Embedding Talos in an agent orchestrator (the README's example, runnable):
 *   npx talos init my-talos && npx tsx docs/examples/orchestrator.ts my-talos
 * The orchestrator runs the gateway inside its own process under the TGA, and its agents call
 * tools through ordinary MCP SDK Clients whose transport is a Talos session.
 * (Imports use repository paths; from the npm package they are all `from 'talos'`.)
 */
import { join, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createRuntime, loadConfig } from '../../runtime/index.ts';
import { loadKeyFile } from '../../runtime/identity/index.ts';
import { TalosClientTransport } from '../../runtime/mcp/client-transport.ts';

const dir = resolve(process.argv[2] ?? 'my-talos');
const runtime = await createRuntime({
  talos: loadConfig(join(dir, 'talos.config.json')), // gateway, upstream MCP servers, limits, audit
  inspector: { port: 0 }, // the live inspector on 127.0.0.1 (0: any free port)
});
console.log(`gateway ${runtime.did} at ${runtime.gatewayUrl}; inspector ${runtime.inspectorUrl}`);

// One agent of the orchestrator: its identity, its capability token, an unmodified MCP client.
const agent = new Client({ name: 'research-agent', version: '1.0.0' });
await agent.connect(
  new TalosClientTransport({
    gateway: runtime.gatewayUrl!,
    identity: loadKeyFile(runtime.crypto, join(dir, 'agent.key.json')),
    crypto: runtime.crypto,
    token: readFileSync(join(dir, 'agent.token'), 'utf8').trim(),
    expectGatewayDid: runtime.did!,
  }),
);
const { tools } = await agent.listTools(); // only the tools the token grants
console.log('tools:', tools.map((t) => t.name).join(', '));
const result = await agent.callTool({ name: 'list_directory', arguments: { path: join(dir, 'workspace') } });
console.log(JSON.stringify(result.content));

await agent.close();
await runtime.stop();
