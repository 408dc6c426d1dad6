import t from 'tap';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { setTimeout as sleep } from 'node:timers/promises';
import { TalosError } from '../errors.ts';
import { ERROR_CODE_ATTRIBUTE, SPANS, currentTraceId, startTelemetry, tracingEnabled, withSpan, withSpanSync } from './tracing.ts';

/** An example tool call shaped like the tunnel's: decrypt, authorize, audit append, upstream call. */
async function toolCall(tool: string, upstreamFails: boolean): Promise<string | undefined> {
  return withSpan(SPANS.toolCall, { 'talos.tool': tool }, async () => {
    withSpanSync(SPANS.decrypt, { 'talos.session': 's1' }, () => 'plaintext');
    await withSpan(SPANS.authorize, { 'talos.decision': 'allow' }, async () => {
      await sleep(1); // context survives timers
      await new Promise((r) => setImmediate(r));
    });
    await withSpan(SPANS.auditAppend, {}, async () => sleep(1));
    try {
      await withSpan(SPANS.upstreamCall, { 'talos.upstream': 'fs' }, async () => {
        if (upstreamFails) throw new TalosError('upstream_unavailable', 'breaker open');
      });
    } catch {
      /* the refusal is the tool call's answer */
    }
    return currentTraceId();
  });
}

function tree(spans: ReadableSpan[], traceId: string) {
  const mine = spans.filter((s) => s.spanContext().traceId === traceId);
  const root = mine.find((s) => !s.parentSpanContext);
  const children = mine
    .filter((s) => s.parentSpanContext?.spanId === root?.spanContext().spanId)
    .sort((a, b) => (a.startTime[0] - b.startTime[0]) * 1e9 + (a.startTime[1] - b.startTime[1]));
  return { mine, root, children };
}

t.test('one tool call is one trace: a root span with its four steps as children', async (t) => {
  const exporter = new InMemorySpanExporter();
  const telemetry = startTelemetry({ exporter, serviceName: 'talos-test' });
  t.teardown(() => telemetry.shutdown());
  t.equal(telemetry.enabled, true);
  t.throws(() => startTelemetry({ exporter }), { code: 'telemetry_running' }, 'one per process');

  const first = await toolCall('read_text_file', false);
  const second = await toolCall('write_file', true);
  await telemetry.forceFlush();
  t.match(first, /^[0-9a-f]{32}$/);
  t.not(first, second, 'two calls, two traces');

  const spans = exporter.getFinishedSpans();
  t.equal(spans.length, 10);
  for (const traceId of [first!, second!]) {
    const { mine, root, children } = tree(spans, traceId);
    t.equal(mine.length, 5, 'five spans in the trace');
    t.equal(root?.name, SPANS.toolCall);
    t.same(
      children.map((s) => s.name),
      [SPANS.decrypt, SPANS.authorize, SPANS.auditAppend, SPANS.upstreamCall],
      'the four steps, in order, each a direct child of the call',
    );
  }
  const failed = tree(spans, second!).children.find((s) => s.name === SPANS.upstreamCall)!;
  t.equal(failed.status.code, SpanStatusCode.ERROR);
  t.equal(failed.attributes[ERROR_CODE_ATTRIBUTE], 'upstream_unavailable');
  t.equal(failed.events[0]?.name, 'exception');
  t.equal(tree(spans, first!).root!.attributes['talos.tool'], 'read_text_file');
  t.equal(tree(spans, first!).root!.status.code, SpanStatusCode.UNSET, 'a successful call is not an error');
});

t.test('after shutdown: spans are no longer recorded, and telemetry can start again', async (t) => {
  const exporter = new InMemorySpanExporter();
  const telemetry = startTelemetry({ exporter });
  await toolCall('x', false);
  t.equal(exporter.getFinishedSpans().length, 5);
  await telemetry.shutdown(); // also empties the in-memory exporter
  t.equal(await toolCall('y', false), undefined, 'no recording span, no trace id');
  t.equal(exporter.getFinishedSpans().length, 0, 'nothing recorded after shutdown');
  const again = startTelemetry({ exporter: new InMemorySpanExporter() });
  t.match(await toolCall('z', false), /^[0-9a-f]{32}$/);
  await again.shutdown();
});

t.test('without an exporter: disabled, and withSpan still runs the work and rethrows', async (t) => {
  const telemetry = startTelemetry({});
  t.equal(telemetry.enabled, false);
  t.equal(await withSpan('w', {}, async () => 42), 42);
  t.equal(withSpanSync('w', {}, () => 7), 7);
  await t.rejects(withSpan('w', {}, async () => {
    throw new TalosError('nope', 'refused');
  }), { code: 'nope' });
  t.throws(() => withSpanSync('w', {}, () => {
    throw new TalosError('nope', 'refused');
  }), { code: 'nope' });
  await telemetry.shutdown();
});

t.test('no provider, no spans: tracing is on exactly while a provider is registered, ours or the embedder\'s', async (t) => {
  t.equal(tracingEnabled(), false, 'nothing registered');
  t.equal(await withSpan('w', {}, async (span) => span.isRecording()), false, 'the callback gets a span that records nothing');
  await t.rejects(withSpan('w', {}, () => {
    throw new TalosError('nope', 'thrown before any await');
  }), { code: 'nope' }, 'a synchronous throw still comes back as a rejection');
  const telemetry = startTelemetry({ exporter: new InMemorySpanExporter() });
  t.equal(tracingEnabled(), true, 'ours');
  await telemetry.shutdown();
  t.equal(tracingEnabled(), false, 'after shutdown');

  const exporter = new InMemorySpanExporter();
  t.ok(trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] })));
  t.teardown(() => trace.disable());
  t.equal(tracingEnabled(), true, 'the embedder\'s own provider');
  await toolCall('e', false);
  t.equal(exporter.getFinishedSpans().length, 5, 'its spans are recorded');
});

t.test('with an OTLP URL: spans are posted as OTLP/HTTP to that endpoint', async (t) => {
  const { createServer } = await import('node:http');
  const received: { path: string; type: string; body: string }[] = [];
  const collector = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString('latin1')));
    req.on('end', () => {
      received.push({ path: req.url ?? '', type: String(req.headers['content-type']), body });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    });
  });
  await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => collector.close(() => r())));
  const port = (collector.address() as { port: number }).port;
  const telemetry = startTelemetry({ otlpUrl: `http://127.0.0.1:${port}/v1/traces`, serviceName: 'talos-otlp-test' });
  await toolCall('read_text_file', false);
  await telemetry.forceFlush();
  await telemetry.shutdown();
  t.ok(received.length >= 1, 'the collector received an export');
  t.equal(received[0]!.path, '/v1/traces');
  const all = received.map((r) => r.body).join('');
  for (const name of Object.values(SPANS).filter((n) => n !== SPANS.job)) t.ok(all.includes(name), `${name} exported`);
  t.ok(all.includes('talos-otlp-test'), 'service name in the resource');
});
