import t from 'tap';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { createCryptoProvider } from './crypto/index.ts';
import { generateIdentity } from './identity/index.ts';
import { SPANS } from './telemetry/index.ts';
import { createRuntime } from './index.ts';
import { connectAgent, text, tunnelConfig } from './system-test-kit.ts';

// One tool call is one trace: the spans of a call through the whole runtime (real session,
// real upstream) read back from an in-memory exporter, and their tree checked.
const crypto = createCryptoProvider();
const issuer = generateIdentity(crypto);
const exporter = new InMemorySpanExporter();
const runtime = await createRuntime({ talos: tunnelConfig(issuer, {}), crypto, telemetry: { exporter }, jobs: false });
t.teardown(() => runtime.stop());

const parentOf = (s: ReadableSpan): string | undefined =>
  (s as unknown as { parentSpanContext?: { spanId: string } }).parentSpanContext?.spanId ?? (s as unknown as { parentSpanId?: string }).parentSpanId;
const startNs = (s: ReadableSpan) => s.startTime[0] * 1e9 + s.startTime[1];

t.test('the spans of one tool call form one tree: decrypt, authorize, audit append, upstream call', async (t) => {
  const { client } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
  t.teardown(() => client.close());
  exporter.reset();
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'traced' } })), 'Echo: traced');
  const spans = exporter.getFinishedSpans();
  const roots = spans.filter((s) => s.name === SPANS.toolCall);
  t.equal(roots.length, 1, 'one tool_call span');
  const root = roots[0]!;
  t.equal(parentOf(root), undefined, 'it is the root of its trace');
  t.equal(root.attributes['talos.tool'], 'echo');
  t.equal(root.attributes['talos.decision'], 'allow');
  const trace = spans.filter((s) => s.spanContext().traceId === root.spanContext().traceId);
  const children = trace.filter((s) => parentOf(s) === root.spanContext().spanId).sort((a, b) => startNs(a) - startNs(b));
  t.same(
    children.map((s) => s.name),
    [SPANS.decrypt, SPANS.authorize, SPANS.auditAppend, SPANS.upstreamCall, SPANS.auditAppend],
    'decrypt, authorize, the decision appended, the upstream call, the response appended',
  );
  t.same(children.filter((s) => s.name === SPANS.auditAppend).map((s) => s.attributes['talos.audit.kind']), ['request', 'response']);
  t.equal(children.find((s) => s.name === SPANS.upstreamCall)!.attributes['talos.upstream'], 'everything');
  t.equal(children.find((s) => s.name === SPANS.authorize)!.attributes['talos.decision'], 'allow');
  t.equal(trace.length, children.length + 1, 'nothing else in the trace');
  for (const c of children) t.ok(startNs(c) >= startNs(root), `${c.name} starts inside the call`);
});

t.test('a refused call is a trace too, with the refusal on the authorize span', async (t) => {
  const { client } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
  t.teardown(() => client.close());
  exporter.reset();
  await t.rejects(client.callTool({ name: 'get-sum', arguments: { a: 1, b: 2 } }));
  const spans = exporter.getFinishedSpans();
  const root = spans.find((s) => s.name === SPANS.toolCall)!;
  t.equal(root.attributes['talos.decision'], 'deny');
  const children = spans.filter((s) => parentOf(s) === root.spanContext().spanId).map((s) => s.name);
  t.same(children.sort(), [SPANS.auditAppend, SPANS.authorize, SPANS.decrypt].sort(), 'no upstream call');
  t.equal(spans.find((s) => s.name === SPANS.authorize)!.attributes['talos.decision'], 'no_matching_grant');
});
