import CircuitBreaker from 'opossum';
import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent } from 'xstate';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { upstreamMachine } from '../../machines/upstream.machine.ts';
import type { BreakerConfig, UpstreamConfig } from '../../runtime/config/config.ts';
import { TunnelError } from '../../runtime/mcp/errors.ts';
import { checkPins, type DriftReport, type PinStore, type ToolDefinition } from '../../runtime/mcp/pinning.ts';
import { UpstreamConnection, transportFor, type TransportFactory } from '../../runtime/mcp/upstream-connection.ts';

/**
 * The upstream actor: one per configured MCP server. It binds the pure upstream machine to a
 * real connection (runtime/mcp/upstream-connection), pins tool definitions on every listing,
 * and sends every call through an opossum circuit breaker. Errors the server itself returns
 * (JSON-RPC errors) do not count against the breaker; dead connections and timeouts do.
 */

export type ProgressListener = (progress: Record<string, unknown>) => void;

export interface UpstreamTool {
  /** The name agents see (toolPrefix + the upstream's name). */
  name: string;
  upstream: string;
  /** The upstream's own name for the tool. */
  upstreamName: string;
  definition: ToolDefinition;
}

export interface UpstreamOptions {
  config: UpstreamConfig;
  breaker: BreakerConfig;
  pins: PinStore;
  /** Overrides the transport from config (the benchmark's in-memory server, tests). */
  transport?: TransportFactory;
  onDrift?: (report: DriftReport) => void;
  onStateChange?: (state: string) => void;
  onFault?: (code: string) => void;
  /** Told on every breaker transition (the TGA records it: health, metrics, traces). */
  onBreakerState?: (state: 'closed' | 'open' | 'half-open') => void;
  /** XState inspection hook (the live inspector's recorder). */
  inspect?: (event: InspectionEvent) => void;
}

export class UpstreamActor {
  readonly name: string;
  private readonly connection: UpstreamConnection;
  private readonly breaker: CircuitBreaker<[string, Record<string, unknown> | undefined, AbortSignal | undefined, ProgressListener | undefined], Record<string, unknown>>;
  private readonly actor: Actor<typeof upstreamMachine>;
  private readonly stderrTail: () => string;
  private toolsByName = new Map<string, UpstreamTool>();
  private driftByName = new Map<string, DriftReport>();

  constructor(private readonly options: UpstreamOptions) {
    const { config, breaker } = options;
    this.name = config.name;
    const t = options.transport ? { factory: options.transport, stderrTail: () => '' } : transportFor(config);
    this.stderrTail = t.stderrTail;
    this.connection = new UpstreamConnection(config.name, t.factory, {
      onClose: () => this.actor.send({ type: 'upstream.closed' }),
      onToolsChanged: () => this.actor.send({ type: 'upstream.tools_changed' }),
    });
    this.breaker = new CircuitBreaker(
      (method: string, params: Record<string, unknown> | undefined, signal: AbortSignal | undefined, onProgress: ProgressListener | undefined) =>
        this.connection.request(method, params, breaker.timeoutMs, signal, onProgress),
      {
        // The connection enforces the timeout itself (and cancels the request upstream).
        timeout: false,
        errorThresholdPercentage: breaker.errorThresholdPercentage,
        resetTimeout: breaker.resetTimeoutMs,
        volumeThreshold: breaker.volumeThreshold,
        // A JSON-RPC error is an answer from a healthy server, and a cancellation the agent's
        // choice: neither is a failure of the upstream.
        errorFilter: (err: unknown) => err instanceof McpError || (err instanceof TunnelError && err.code === 'cancelled'),
      },
    );
    this.breaker.on('open', () => options.onBreakerState?.('open'));
    this.breaker.on('halfOpen', () => options.onBreakerState?.('half-open'));
    this.breaker.on('close', () => options.onBreakerState?.('closed'));
    const machine = upstreamMachine.provide({
      actors: {
        connect: fromPromise(async () => {
          await this.connection.close();
          await this.connection.open();
          await this.refreshTools();
        }),
        refreshTools: fromPromise(async () => this.refreshTools()),
        disconnect: fromPromise(async () => this.connection.close()),
      },
      actions: {
        reportUp: () => {},
        reportFault: (_, params) => options.onFault?.(params.code),
        reportDrift: () => {},
      },
    });
    this.actor = createActor(machine, { input: { name: config.name }, ...(options.inspect ? { inspect: options.inspect } : {}) });
    this.actor.subscribe((s) => options.onStateChange?.(String(s.value)));
  }

  /** Starts the machine and waits until the first connection succeeded (or failed for good). */
  async start(): Promise<void> {
    this.actor.start();
    const s = await waitFor(this.actor, (s) => s.matches('ready') || s.matches('failed') || s.matches('backoff'));
    if (!s.matches('ready')) {
      const tail = this.stderrTail().trim().split('\n').slice(-3).join(' | ');
      throw new TunnelError('upstream_unavailable', `upstream ${this.name} did not start: ${s.context.lastError ?? 'unknown'}${tail ? ` (stderr: ${tail})` : ''}`);
    }
  }

  get state(): string {
    return String(this.actor.getSnapshot().value);
  }

  get breakerState(): 'closed' | 'open' | 'half-open' {
    return this.breaker.opened ? 'open' : this.breaker.halfOpen ? 'half-open' : 'closed';
  }

  get pid(): number | undefined {
    return this.connection.pid;
  }

  /** The tools agents may see: pinned and unchanged. */
  tools(): UpstreamTool[] {
    return [...this.toolsByName.values()];
  }

  drift(): DriftReport[] {
    return [...this.driftByName.values()];
  }

  tool(exposedName: string): UpstreamTool | undefined {
    return this.toolsByName.get(exposedName);
  }

  isDrifted(exposedName: string): boolean {
    return this.driftByName.has(exposedName);
  }

  async refreshTools(): Promise<void> {
    const listed = await this.connection.listTools();
    const { accepted, drift } = checkPins(this.name, listed, this.options.pins);
    const prefix = this.options.config.toolPrefix;
    const next = new Map<string, UpstreamTool>();
    for (const def of accepted) next.set(prefix + def.name, { name: prefix + def.name, upstream: this.name, upstreamName: def.name, definition: def });
    const driftNext = new Map<string, DriftReport>();
    for (const d of drift) {
      driftNext.set(prefix + d.tool, d);
      if (!this.driftByName.has(prefix + d.tool)) {
        this.actor.send({ type: 'upstream.drift', tool: d.tool, pinned: d.pinned, seen: d.seen });
        this.options.onDrift?.(d);
      }
    }
    this.toolsByName = next;
    this.driftByName = driftNext;
  }

  /** Forwards a request through the breaker. Throws TunnelError upstream_unavailable or McpError. */
  async call(method: string, params: Record<string, unknown> | undefined, signal?: AbortSignal, onProgress?: ProgressListener): Promise<Record<string, unknown>> {
    try {
      return await this.breaker.fire(method, params, signal, onProgress);
    } catch (err) {
      if (err instanceof McpError || err instanceof TunnelError) throw err;
      const code = (err as { code?: string }).code;
      if (code === 'EOPENBREAKER') {
        throw new TunnelError('upstream_unavailable', `upstream ${this.name} is unavailable (circuit open)`, { upstream: this.name, breaker: 'open' });
      }
      throw new TunnelError('upstream_unavailable', `upstream ${this.name} failed: ${(err as Error).message}`, { upstream: this.name }, { cause: err });
    }
  }

  async stop(): Promise<void> {
    this.actor.send({ type: 'upstream.stop' });
    await waitFor(this.actor, (s) => s.status === 'done');
    this.breaker.shutdown();
  }
}
