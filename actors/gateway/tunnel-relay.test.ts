import t from 'tap';
import { LoggingMessageNotificationSchema, ResourceListChangedNotificationSchema, ResourceUpdatedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import type { Grant } from '../../runtime/capability/index.ts';
import { referenceServerScript } from '../../runtime/mcp/servers.ts';
import { startKit } from './test-kit.ts';
import { refusal } from '../../runtime/system-test-kit.ts';

// The whole client->server surface of MCP besides tools, through a real gateway to the real
// server-everything, with the SDK's own Client on the agent side: resources (list, templates,
// read, subscribe + updated, list_changed), prompts (list, get), completion, logging.
const everything = { name: 'everything', transport: 'stdio', command: 'node', args: [referenceServerScript('server-everything'), 'stdio'] };
const kit = await startKit({ upstreams: [everything] });
t.teardown(() => kit.close());

const DOCS = 'demo://resource/static/document/';
const grants: Grant[] = [
  { method: 'resources/read', args: { uri: { glob: 'demo:/resource/static/**' } } },
  { method: 'resources/read', args: { uri: { glob: 'demo:/resource/session/**' } } },
  { method: 'prompts/get', tool: 'simple-prompt' },
  { method: 'prompts/get', tool: 'args-prompt', args: { city: { in: ['Paris', 'Lyon'] } } },
  { method: 'prompts/get', tool: 'completable-prompt' },
  { method: 'logging/setLevel' },
  { method: 'tools/call', tool: 'toggle-simulated-logging' },
  { method: 'tools/call', tool: 'toggle-subscriber-updates' },
  { method: 'tools/call', tool: 'gzip-file-as-resource' },
];
const { client } = await kit.agent(grants);
const logs: { level: string; data: unknown }[] = [];
const updated: string[] = [];
let listChanged = 0;
client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => void logs.push(n.params));
client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void updated.push(n.params.uri));
client.setNotificationHandler(ResourceListChangedNotificationSchema, () => void listChanged++);

async function until(cond: () => boolean): Promise<boolean> {
  for (let i = 0; i < 1000 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  return cond();
}

t.test('initialize advertises what server-everything offers', async (t) => {
  const caps = client.getServerCapabilities()!;
  t.match(caps, { tools: { listChanged: true }, prompts: { listChanged: true }, resources: { subscribe: true, listChanged: true }, logging: {} });
  t.notOk('tasks' in caps, 'nothing the gateway does not relay');
});

t.test('resources: listed and read as granted, refused outside the grant', async (t) => {
  const { resources } = await client.listResources();
  t.ok(resources.length > 0);
  t.ok(resources.every((r) => r.uri.startsWith(DOCS)), 'only the granted uris are listed');
  const read = await client.readResource({ uri: `${DOCS}features.md` });
  t.match(read.contents[0], { uri: `${DOCS}features.md`, mimeType: 'text/markdown' });
  const { resourceTemplates } = await client.listResourceTemplates();
  t.same(resourceTemplates.map((x) => x.uriTemplate).sort(), ['demo://resource/dynamic/blob/{resourceId}', 'demo://resource/dynamic/text/{resourceId}']);
  const r = await refusal(client.readResource({ uri: 'demo://resource/dynamic/text/1' }));
  t.same([r.code, r.reason, r.data.arg], [-32011, 'arg_violation', 'uri']);
});

t.test('prompts: listed as granted, got with granted arguments only', async (t) => {
  const { prompts } = await client.listPrompts();
  t.same(prompts.map((p) => p.name).sort(), ['args-prompt', 'completable-prompt', 'simple-prompt']);
  const got = await client.getPrompt({ name: 'args-prompt', arguments: { city: 'Paris' } });
  t.match(got.messages[0], { content: { text: "What's weather in Paris?" } });
  const outside = await refusal(client.getPrompt({ name: 'args-prompt', arguments: { city: 'Berlin' } }));
  t.same([outside.reason, outside.data.arg], ['arg_violation', 'city']);
  t.equal((await refusal(client.getPrompt({ name: 'resource-prompt', arguments: { resourceType: 'Text', resourceId: '1' } }))).reason, 'no_matching_grant');
});

t.test('completion: for a granted prompt', async (t) => {
  const r = await client.complete({ ref: { type: 'ref/prompt', name: 'completable-prompt' }, argument: { name: 'department', value: 'E' } });
  t.same(r.completion.values, ['Engineering']);
  const other = await refusal(client.complete({ ref: { type: 'ref/prompt', name: 'resource-prompt' }, argument: { name: 'resourceType', value: 'T' } }));
  t.equal(other.reason, 'no_matching_grant');
});

t.test('logging: setLevel, then the server\'s messages reach the agent', async (t) => {
  await client.setLoggingLevel('debug');
  await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
  t.ok(await until(() => logs.some((l) => String(l.data).includes('-level message') || String(l.data).includes('level-message'))), 'a simulated log message arrived');
  await client.callTool({ name: 'toggle-simulated-logging', arguments: {} });
});

t.test('subscribe: updates of the subscribed uri reach the subscriber only', async (t) => {
  const other = await kit.agent([{ method: 'resources/read' }]);
  const otherUpdates: unknown[] = [];
  other.client.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => void otherUpdates.push(n.params.uri));
  const uri = `${DOCS}features.md`;
  await client.subscribeResource({ uri });
  t.equal((await refusal(client.subscribeResource({ uri: 'demo://resource/dynamic/text/1' }))).reason, 'arg_violation', 'only a readable uri');
  await client.callTool({ name: 'toggle-subscriber-updates', arguments: {} });
  t.ok(await until(() => updated.includes(uri)), 'the update arrived');
  await client.callTool({ name: 'toggle-subscriber-updates', arguments: {} });
  t.same(otherUpdates, [], 'a session that did not subscribe gets no update');
  await client.unsubscribeResource({ uri });
});

t.test('list_changed: a resource registered by the server is announced and then listed', async (t) => {
  const before = listChanged;
  await client.callTool({ name: 'gzip-file-as-resource', arguments: { name: 'hello.gz', data: 'data:text/plain;base64,aGVsbG8=', outputType: 'resourceLink' } });
  t.ok(await until(() => listChanged > before), 'resources/list_changed relayed');
  const { resources } = await client.listResources();
  t.ok(resources.some((r) => r.uri === 'demo://resource/session/hello.gz'), 'the new resource is listed (granted)');
  const read = await client.readResource({ uri: 'demo://resource/session/hello.gz' });
  t.match(read.contents[0], { mimeType: 'application/gzip' });
});

t.test('every decision is audited, denials included, and each has an inclusion proof', async (t) => {
  const events = (await kit.events()).map((e) => e.event);
  const denied = events.filter((e) => e.decision === 'deny').map((e) => `${e.method}:${e.tool ?? ''}:${e.reason}`);
  t.ok(denied.includes('resources/read::arg_violation'));
  t.ok(denied.includes('prompts/get:args-prompt:arg_violation'));
  t.ok(denied.includes('prompts/get:resource-prompt:no_matching_grant'));
  t.ok(denied.includes('resources/subscribe::arg_violation'));
  t.ok(denied.includes('completion/complete:resource-prompt:no_matching_grant'));
  for (const m of ['resources/list', 'resources/read', 'resources/templates/list', 'prompts/list', 'prompts/get', 'completion/complete', 'logging/setLevel', 'resources/subscribe']) {
    t.ok(events.some((e) => e.kind === 'request' && e.method === m && e.decision === 'allow'), `${m} allowed and audited`);
  }
  t.ok(events.some((e) => e.kind === 'response' && e.method === 'prompts/get' && e.from === 'everything' && e.reason === 'ok'));
  t.equal(await kit.verifyAll(), events.length, 'a valid inclusion proof for every event');
});
