import { INVALID_SPAN_CONTEXT, ProxyTracerProvider, SpanStatusCode, context, propagation, trace, type Attributes, type Span } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter, type SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { TalosError } from '../errors.ts';

/**
 * Traces (contracts/SPEC.md section 10, "Health and telemetry"). Code everywhere calls `withSpan`
 * on @opentelemetry/api; while no tracer provider is registered (no `startTelemetry`, nor one of
 * the embedder's own) those calls make no span at all. One tool call is one trace:
 *   talos.tool_call ─┬─ talos.decrypt
 *                    ├─ talos.authorize
 *                    ├─ talos.audit.append
 *                    └─ talos.upstream.call
 * Span attributes never hold arguments, results, keys or tokens: ids, names, decisions, codes.
 */
export const TRACER_NAME = 'talos';
export const SPANS = {
  toolCall: 'talos.tool_call',
  decrypt: 'talos.decrypt',
  authorize: 'talos.authorize',
  auditAppend: 'talos.audit.append',
  upstreamCall: 'talos.upstream.call',
  job: 'talos.job',
} as const;
/** Attribute set on a span whose work threw a TalosError. */
export const ERROR_CODE_ATTRIBUTE = 'talos.error.code';

export interface TelemetryOptions {
  serviceName?: string;
  /** Full OTLP/HTTP traces endpoint, e.g. http://127.0.0.1:4318/v1/traces (batched export). */
  otlpUrl?: string;
  /** An exporter of your own (tests: InMemorySpanExporter), exported span by span. */
  exporter?: SpanExporter;
}

export interface Telemetry {
  /** False when neither an exporter nor an OTLP URL was configured (no SDK started). */
  readonly enabled: boolean;
  forceFlush(): Promise<void>;
  /** Flushes, stops the SDK and unregisters the global providers (a later start works again). */
  shutdown(): Promise<void>;
}

let active: Telemetry | undefined;

/**
 * Starts the OpenTelemetry Node SDK with traces only (no metrics or logs exporters: metrics are
 * Prometheus, see metrics.ts). One per process: starting again while one runs is refused.
 */
export function startTelemetry(options: TelemetryOptions = {}): Telemetry {
  if (active) throw new TalosError('telemetry_running', 'telemetry is already started in this process');
  const processors: SpanProcessor[] = [];
  if (options.exporter) processors.push(new SimpleSpanProcessor(options.exporter));
  if (options.otlpUrl) processors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url: options.otlpUrl })));
  if (processors.length === 0) return { enabled: false, forceFlush: async () => {}, shutdown: async () => {} };

  const sdk = new NodeSDK({
    serviceName: options.serviceName ?? 'talos',
    autoDetectResources: false,
    spanProcessors: processors,
    metricReaders: [],
    logRecordProcessors: [],
    instrumentations: [],
  });
  sdk.start();
  const telemetry: Telemetry = {
    enabled: true,
    forceFlush: async () => {
      await Promise.all(processors.map((p) => p.forceFlush()));
    },
    shutdown: async () => {
      if (active !== telemetry) return;
      await sdk.shutdown();
      trace.disable();
      context.disable();
      propagation.disable();
      active = undefined;
    },
  };
  active = telemetry;
  return telemetry;
}

export function tracer() {
  return trace.getTracer(TRACER_NAME);
}

/** What the API's global provider delegates to while none is registered (a shared singleton). */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * False while no tracer provider is registered in this process: every span would be the API's
 * no-op span, which still costs a few objects and closures per call (measured ~4 KB of garbage
 * per gateway request). A provider registered through another copy of the API counts as one.
 */
export function tracingEnabled(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider && provider.getDelegate() === NOOP_PROVIDER);
}

/** The span `withSpan` hands to its callback while tracing is off: records nothing. */
const NO_SPAN = trace.wrapSpanContext(INVALID_SPAN_CONTEXT);

function recordFailure(span: Span, err: unknown): void {
  if (err instanceof TalosError) span.setAttribute(ERROR_CODE_ATTRIBUTE, err.code);
  // The exception's message is ours (TalosError messages never carry secrets); no stack values.
  span.recordException(err instanceof Error ? { name: err.name, message: err.message } : { message: String(err) });
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof TalosError ? err.code : 'error' });
}

/**
 * Runs `fn` inside a new active span (a child of the current one, or a new trace). The span
 * ends when `fn` settles; a throw marks it as an error (with the TalosError code) and rethrows.
 */
export function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T> | T): Promise<T> {
  if (!tracingEnabled()) {
    try {
      return Promise.resolve(fn(NO_SPAN));
    } catch (err) {
      return Promise.reject(err);
    }
  }
  return tracer().startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (err) {
      recordFailure(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** Synchronous variant for inline work (a decrypt, a signature check). */
export function withSpanSync<T>(name: string, attributes: Attributes, fn: (span: Span) => T): T {
  if (!tracingEnabled()) return fn(NO_SPAN);
  return tracer().startActiveSpan(name, { attributes }, (span) => {
    try {
      return fn(span);
    } catch (err) {
      recordFailure(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/** The current trace id (32 hex), or undefined outside a recorded span: for log/audit correlation. */
export function currentTraceId(): string | undefined {
  const ctx = trace.getActiveSpan()?.spanContext();
  return ctx && trace.isSpanContextValid(ctx) ? ctx.traceId : undefined;
}
