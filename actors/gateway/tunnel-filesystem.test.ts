import t from 'tap';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { referenceServerScript } from '../../runtime/mcp/servers.ts';
import { TalosClientTransport } from '../../runtime/mcp/client-transport.ts';
import { generateIdentity } from '../../runtime/identity/index.ts';
import { RPC_ERRORS } from '../../runtime/mcp/errors.ts';
import { startKit } from './test-kit.ts';

// The real @modelcontextprotocol/server-filesystem behind the gateway, serving a whole folder;
// the capability narrows the agent to one sub-folder, read-only.
const root = realpathSync(mkdtempSync(join(tmpdir(), 'talos-fs-')));
mkdirSync(join(root, 'granted', 'sub'), { recursive: true });
mkdirSync(join(root, 'other'));
writeFileSync(join(root, 'granted', 'a.txt'), 'alpha');
writeFileSync(join(root, 'granted', 'sub', 'b.txt'), 'beta');
writeFileSync(join(root, 'other', 'secret.txt'), 'do not read');
t.teardown(() => rmSync(root, { recursive: true, force: true }));

const kit = await startKit({
  upstreams: [{ name: 'fs', transport: 'stdio', command: 'node', args: [referenceServerScript('server-filesystem'), root] }],
});
t.teardown(() => kit.close());

const glob = `${root}/granted/**`;
const grants = [
  { method: 'tools/call', tool: 'read_text_file', args: { path: { glob } } },
  { method: 'tools/call', tool: 'list_directory', args: { path: { glob: `${root}/granted` } } },
];
const { client, token } = await kit.agent(grants);

const text = (r: unknown) => ((r as { content: { text: string }[] }).content[0]!.text);
async function refusal(p: Promise<unknown>): Promise<{ code: number; reason: string; arg?: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof McpError) {
      const d = err.data as { talos?: { reason: string; arg?: string } };
      return { code: err.code, reason: d?.talos?.reason ?? 'none', ...(d?.talos?.arg ? { arg: d.talos.arg } : {}) };
    }
    throw err;
  }
  throw new Error('expected a refusal');
}

t.test('tools/list shows only the granted tools', async (t) => {
  const { tools } = await client.listTools();
  t.same(tools.map((x) => x.name).sort(), ['list_directory', 'read_text_file']);
  t.ok(tools.find((x) => x.name === 'read_text_file')!.inputSchema, 'definitions pass through');
});

t.test('reads inside the granted folder pass', async (t) => {
  t.equal(text(await client.callTool({ name: 'read_text_file', arguments: { path: `${root}/granted/a.txt` } })), 'alpha');
  t.equal(text(await client.callTool({ name: 'read_text_file', arguments: { path: `${root}/granted/sub/b.txt` } })), 'beta');
  t.match(text(await client.callTool({ name: 'list_directory', arguments: { path: `${root}/granted` } })), /a\.txt/);
});

t.test('escapes, other folders and writes are refused with a clear reason', async (t) => {
  t.same(await refusal(client.callTool({ name: 'read_text_file', arguments: { path: `${root}/granted/../other/secret.txt` } })), {
    code: RPC_ERRORS.unauthorized, reason: 'arg_violation', arg: 'path',
  });
  t.same(await refusal(client.callTool({ name: 'read_text_file', arguments: { path: `${root}/other/secret.txt` } })), {
    code: RPC_ERRORS.unauthorized, reason: 'arg_violation', arg: 'path',
  });
  t.same((await refusal(client.callTool({ name: 'read_text_file', arguments: { path: 'granted/a.txt' } }))).reason, 'arg_violation', 'a relative path never matches an absolute glob');
  t.same((await refusal(client.callTool({ name: 'list_directory', arguments: { path: root } }))).reason, 'arg_violation');
  t.same(await refusal(client.callTool({ name: 'write_file', arguments: { path: `${root}/granted/new.txt`, content: 'x' } })), {
    code: RPC_ERRORS.unauthorized, reason: 'no_matching_grant',
  });
  t.notOk(existsSync(join(root, 'granted', 'new.txt')), 'nothing was written');
});

t.test("another agent cannot use this agent's token", async (t) => {
  const thief = new Client({ name: 'thief', version: '1' });
  await thief.connect(new TalosClientTransport({ gateway: kit.gw.url, identity: generateIdentity(kit.crypto), crypto: kit.crypto, token }));
  t.teardown(() => thief.close());
  t.equal((await refusal(thief.callTool({ name: 'read_text_file', arguments: { path: `${root}/granted/a.txt` } }))).reason, 'wrong_subject');
});

t.test('every call, allowed or refused, is in the audit log with a verified inclusion proof', async (t) => {
  const events = (await kit.events()).map((e) => e.event);
  const calls = events.filter((e) => e.kind === 'request' && e.method === 'tools/call');
  t.equal(calls.filter((e) => e.decision === 'allow').length, 3);
  t.same(
    calls.filter((e) => e.decision === 'deny').map((e) => e.reason),
    ['arg_violation', 'arg_violation', 'arg_violation', 'arg_violation', 'no_matching_grant', 'wrong_subject'],
  );
  t.ok(calls.every((e) => e.tool && e.msg_hash && e.to === kit.gw.did));
  t.ok(calls.filter((e) => e.decision === 'allow').every((e) => typeof e.token_id === 'string'));
  t.equal(events.filter((e) => e.kind === 'response').length, 3, 'each forwarded call has its response audited');
  t.notOk(JSON.stringify(events).includes('alpha'), 'no plaintext result in the log');
  t.notOk(JSON.stringify(events).includes('granted/a.txt'), 'no plaintext argument in the log');
  const n = await kit.verifyAll();
  t.equal(n, events.length, 'every leaf has a verified inclusion proof under a signed checkpoint');
});
