import CircuitBreaker from 'opossum';
import { createActor, fromPromise, waitFor, type Actor, type InspectionEvent } from 'xstate';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { upstreamMachine } from '../../machines/upstream.machine.ts';
import type { BreakerConfig, UpstreamConfig } from '../../runtime/config/config.ts';
import { TunnelError } from '../../runtime/mcp/errors.ts';
import type { RpcNotification } from '../../runtime/mcp/jsonrpc.ts';
import { checkPins, promptHash, promptPinKey, type DriftReport, type PinStore, type PromptDefinition, type ToolDefinition } from '../../runtime/mcp/pinning.ts';
import type { CircuitAdmission, RelayUpstream } from '../../runtime/mcp/relay.ts';
import { UpstreamConnection, transportFor, type TransportFactory } from '../../runtime/mcp/upstream-connection.ts';
import { CircuitGate } from './circuit.ts';

/**
 * The upstream actor: one per configured MCP server. It binds the pure upstream machine to a
 * real connection (runtime/mcp/upstream-connection), pins tool and prompt definitions on every
 * listing, keeps the last resources and templates listings (they route resource URIs), and
 * sends every call through an opossum circuit breaker. Errors the server itself returns
 * (JSON-RPC errors) do not count against the breaker; dead connections and timeouts do.
 * Notifications agents may get (list changes once the list is re-read, resource updates,
 * log messages) go to the listeners of `onNotification`.
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
  /** A tool (or, with `kind: 'prompt'`, a prompt) whose definition changed since it was pinned. */
  onDrift?: (report: DriftReport & { kind?: 'prompt' }) => void;
  onStateChange?: (state: string) => void;
  onFault?: (code: string) => void;
  /** Told on every breaker transition (the TGA records it: health, metrics, traces). */
  onBreakerState?: (state: 'closed' | 'open' | 'half-open') => void;
  /** XState inspection hook (the live inspector's recorder). */
  inspect?: (event: InspectionEvent) => void;
  /** Overrides the total deadline of a request that reports progress (MAX_PROGRESS_REQUEST_MS; tests). */
  maxProgressRequestMs?: number;
}

export class UpstreamActor implements RelayUpstream {
  readonly name: string;
  private readonly connection: UpstreamConnection;
  private readonly breaker: CircuitBreaker<[string, Record<string, unknown> | undefined, AbortSignal | undefined, ProgressListener | undefined], Record<string, unknown>>;
  private readonly actor: Actor<typeof upstreamMachine>;
  private readonly stderrTail: () => string;
  private toolsByName = new Map<string, UpstreamTool>();
  private driftByName = new Map<string, DriftReport>();
  private promptsByName = new Map<string, PromptDefinition>();
  private promptDrift = new Map<string, DriftReport>();
  private readonly listings: Record<'resources' | 'templates', Record<string, unknown>[]> = { resources: [], templates: [] };
  private readonly listeners = new Set<(notification: RpcNotification) => void>();
  /** One re-read of prompts or resources at a time; a change announced meanwhile re-reads after it. */
  private readonly rereads: Record<'prompts' | 'resources', Promise<void>> = { prompts: Promise.resolve(), resources: Promise.resolve() };
  private connectedBefore = false;
  /** Asked by the gateway before a call spends anything (actors/upstream/circuit.ts). */
  readonly admit: () => CircuitAdmission;
  private readonly gate: CircuitGate;

  constructor(private readonly options: UpstreamOptions) {
    const { config, breaker } = options;
    this.name = config.name;
    const t = options.transport ? { factory: options.transport, stderrTail: () => '' } : transportFor(config);
    this.stderrTail = t.stderrTail;
    this.connection = new UpstreamConnection(config.name, t.factory, {
      onClose: () => this.actor.send({ type: 'upstream.closed' }),
      onToolsChanged: () => this.actor.send({ type: 'upstream.tools_changed' }),
      onListChanged: (list) => this.reread(list),
      onNotification: (n) => this.emit(n),
    }, options.maxProgressRequestMs !== undefined ? { maxProgressRequestMs: options.maxProgressRequestMs } : {});
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
    this.gate = new CircuitGate(this.breaker, breaker.resetTimeoutMs, () => Date.now());
    this.admit = this.gate.admit;
    this.breaker.on('open', () => options.onBreakerState?.('open'));
    this.breaker.on('halfOpen', () => options.onBreakerState?.('half-open'));
    this.breaker.on('close', () => options.onBreakerState?.('closed'));
    const machine = upstreamMachine.provide({
      actors: {
        // The signal aborts when the machine leaves `connecting` (upstream.stop): open() then
        // kills the server it is starting instead of leaving it running after we stopped.
        connect: fromPromise(async ({ signal }) => {
          await this.connection.close();
          await this.connection.open(signal);
          await this.refreshTools();
          await this.refreshLists();
          // refreshLists swallows errors, so a server that died while being listed is only seen
          // here; its upstream.closed came during `connecting` and was ignored. Failing takes the
          // machine's retry path instead of entering `ready` with no connection.
          if (!this.connection.connected) {
            throw new TunnelError('upstream_unavailable', `upstream ${this.name} closed while its lists were read`, { upstream: this.name });
          }
          // A new connection may serve other lists: agents re-read them.
          if (this.connectedBefore) for (const kind of ['tools', 'prompts', 'resources']) this.emit({ jsonrpc: '2.0', method: `notifications/${kind}/list_changed` });
          this.connectedBefore = true;
        }),
        refreshTools: fromPromise(async () => {
          await this.refreshTools();
          this.emit({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' });
        }),
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
    // A server that declares no tools (prompts or resources only) has none to list.
    const listed = this.connection.capabilities.tools === undefined ? [] : await this.connection.listTools();
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

  capabilities(): Record<string, unknown> {
    return this.connection.capabilities;
  }

  /** The prompts agents may see: pinned and unchanged. */
  prompts(): Record<string, unknown>[] {
    return [...this.promptsByName.values()];
  }

  prompt(name: string): Record<string, unknown> | 'drift' | undefined {
    return this.promptsByName.get(name) ?? (this.promptDrift.has(name) ? 'drift' : undefined);
  }

  promptDriftReports(): DriftReport[] {
    return [...this.promptDrift.values()];
  }

  listed(listing: 'resources' | 'templates'): Record<string, unknown>[] {
    return this.listings[listing];
  }

  async relist(listing: 'resources' | 'templates'): Promise<void> {
    if (!this.offers('resources')) return;
    this.listings[listing] = await this.connection.list(listing);
  }

  onNotification(listener: (notification: RpcNotification) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  async refreshPrompts(): Promise<void> {
    if (!this.offers('prompts')) return;
    const listed = (await this.connection.list('prompts')).filter((p): p is PromptDefinition => typeof p.name === 'string');
    const { accepted, drift } = checkPins(this.name, listed, this.options.pins, promptHash, promptPinKey(this.name));
    const driftNext = new Map<string, DriftReport>();
    for (const d of drift) {
      driftNext.set(d.tool, d);
      if (!this.promptDrift.has(d.tool)) this.options.onDrift?.({ ...d, kind: 'prompt' });
    }
    this.promptsByName = new Map(accepted.map((p) => [p.name, p]));
    this.promptDrift = driftNext;
  }

  private offers(kind: 'prompts' | 'resources'): boolean {
    return this.connection.capabilities[kind] !== undefined;
  }

  /** A listing that fails keeps the last one read: it never takes the upstream's tools down. */
  private async refreshLists(): Promise<void> {
    await this.refreshPrompts().catch(() => {});
    await this.relist('resources').catch(() => {});
    await this.relist('templates').catch(() => {});
  }

  /** A list_changed from the server: re-read that list, then tell the agents. */
  private reread(list: 'prompts' | 'resources'): void {
    const run = async () => {
      if (list === 'prompts') await this.refreshPrompts();
      else await Promise.all([this.relist('resources'), this.relist('templates')]);
      this.emit({ jsonrpc: '2.0', method: `notifications/${list}/list_changed` });
    };
    this.rereads[list] = this.rereads[list].then(run, run).catch(() => {});
  }

  private emit(notification: RpcNotification): void {
    for (const l of this.listeners) {
      try {
        l(notification);
      } catch {
        // One listener's failure never keeps a notification from the others.
      }
    }
  }

  /** Forwards a request through the breaker. Throws TunnelError upstream_unavailable or McpError. */
  readonly call = async (method: string, params: Record<string, unknown> | undefined, signal?: AbortSignal, onProgress?: ProgressListener): Promise<Record<string, unknown>> => {
    try {
      return await this.breaker.fire(method, params, signal, onProgress);
    } catch (err) {
      if (err instanceof McpError || err instanceof TunnelError) throw err;
      throw this.gate.refusal(err, this.name) ?? new TunnelError('upstream_unavailable', `upstream ${this.name} failed: ${(err as Error).message}`, { upstream: this.name }, { cause: err });
    }
  };

  async stop(): Promise<void> {
    this.actor.send({ type: 'upstream.stop' });
    await waitFor(this.actor, (s) => s.status === 'done');
    this.breaker.shutdown();
  }
}
