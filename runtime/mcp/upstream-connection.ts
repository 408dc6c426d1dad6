import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport, getDefaultEnvironment } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  ErrorCode,
  LoggingMessageNotificationSchema,
  McpError,
  PromptListChangedNotificationSchema,
  ResourceListChangedNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ResultSchema,
  ToolListChangedNotificationSchema,
  type ServerCapabilities,
} from '@modelcontextprotocol/sdk/types.js';
import type { UpstreamConfig } from '../config/config.ts';
import { TunnelError } from './errors.ts';
import type { RpcNotification } from './jsonrpc.ts';
import type { ToolDefinition } from './pinning.ts';

/**
 * One live connection to one MCP server, through the SDK's own Client and client transports
 * (stdio or Streamable HTTP). It forwards already-authorized requests as they are, lists tools,
 * prompts, resources and templates, and reports the server's notifications; reconnection,
 * breaking and pinning are the upstream actor's job. Requests the server sends to us
 * (sampling, elicitation, roots) are refused: one connection serves every agent, so there is
 * no agent to route them to.
 */

/** Pages of a listing (tools/list, prompts/list, ...) followed at most (a server that pages forever is cut off). */
export const MAX_TOOL_PAGES = 50;
/** Tools accepted from one upstream at most. */
export const MAX_TOOLS_PER_UPSTREAM = 1000;
/** Prompts, resources and resource templates accepted from one upstream at most, each. */
export const MAX_ITEMS_PER_LISTING = 1000;
/** Bytes of the server's stderr kept for diagnostics. */
export const STDERR_TAIL_BYTES = 4096;
/**
 * The longest one request that reports progress stays open: each progress notification restarts
 * its own timeout, so without this a server that keeps reporting holds the request (and the
 * agent's in-flight slot and budget reservation) forever.
 */
export const MAX_PROGRESS_REQUEST_MS = 10 * 60_000;

export type TransportFactory = () => Transport;

/** The listings the gateway reads: the method and the result member that holds the items. */
export const LISTINGS = {
  prompts: { method: 'prompts/list', key: 'prompts' },
  resources: { method: 'resources/list', key: 'resources' },
  templates: { method: 'resources/templates/list', key: 'resourceTemplates' },
} as const;
export type Listing = keyof typeof LISTINGS;

/** What the server tells us on its own, as the upstream actor needs it. */
export interface ConnectionEvents {
  onClose?: () => void;
  onToolsChanged?: () => void;
  /** prompts or resources list_changed. */
  onListChanged?: (list: 'prompts' | 'resources') => void;
  /** notifications/resources/updated and notifications/message, as the server sent them. */
  onNotification?: (notification: RpcNotification) => void;
}

/** The answer to every server-to-client request (sampling/createMessage, elicitation/create, roots/list). */
export const SERVER_REQUEST_REFUSAL =
  'talos gateway: server-to-client requests are not relayed (one connection serves many agents, so there is no agent to route them to)';

export const CLIENT_INFO = { name: 'talos-gateway', version: '0.1.0' };

/** The environment a stdio upstream gets: the SDK's minimal default set plus the configured env. */
export function upstreamEnvironment(extra: Record<string, string>): Record<string, string> {
  return { ...getDefaultEnvironment(), ...extra };
}

export function transportFor(config: UpstreamConfig): { factory: TransportFactory; stderrTail: () => string } {
  let tail = '';
  if (config.transport === 'http') {
    return { factory: () => new StreamableHTTPClientTransport(new URL(config.url)), stderrTail: () => '' };
  }
  const factory = () => {
    const t = new StdioClientTransport({
      // 'node' means this very Node binary: never npx, never whatever `node` is on PATH.
      command: config.command === 'node' ? process.execPath : config.command,
      args: config.args,
      env: upstreamEnvironment(config.env),
      stderr: 'pipe',
      ...(config.cwd !== undefined ? { cwd: config.cwd } : {}),
    });
    t.stderr?.on('data', (d: Buffer) => {
      tail = (tail + d.toString('utf8')).slice(-STDERR_TAIL_BYTES);
    });
    return t;
  };
  return { factory, stderrTail: () => tail };
}

export interface ConnectionOptions {
  /** Overrides MAX_PROGRESS_REQUEST_MS (tests). */
  maxProgressRequestMs?: number;
}

export class UpstreamConnection {
  private client: Client | undefined;
  private transport: Transport | undefined;
  private closedByUs = false;
  /** Bumped by every open() and close(): an open() that sees it changed has been superseded. */
  private epoch = 0;
  /** Clients whose connect() is still running: close() must end them too, or their child outlives us. */
  private readonly opening = new Set<Client>();
  private readonly maxProgressRequestMs: number;

  constructor(
    readonly name: string,
    private readonly factory: TransportFactory,
    private readonly events: ConnectionEvents = {},
    options: ConnectionOptions = {},
  ) {
    this.maxProgressRequestMs = options.maxProgressRequestMs ?? MAX_PROGRESS_REQUEST_MS;
  }

  /** What the server declared at initialize (kept after a disconnection: the last known). */
  capabilities: ServerCapabilities = {};

  get connected(): boolean {
    return this.client !== undefined;
  }

  /** The upstream's process id (stdio only), for supervision and tests. */
  get pid(): number | undefined {
    const t = this.transport as { pid?: number | null } | undefined;
    return t?.pid ?? undefined;
  }

  /**
   * Starts the server (or opens the HTTP session) and initializes. A close() or an abort of
   * `signal` while this runs ends the new client (killing its process) and throws
   * `upstream_closed`: nothing opened for an owner that has gone may stay alive.
   */
  async open(signal?: AbortSignal): Promise<void> {
    const epoch = ++this.epoch;
    const abandoned = () =>
      new TunnelError('upstream_closed', `upstream ${this.name} was closed while connecting`, { upstream: this.name });
    if (signal?.aborted) throw abandoned();
    const client = new Client(CLIENT_INFO, { capabilities: {} });
    const transport = this.factory();
    this.closedByUs = false;
    client.onclose = () => {
      const wasOurs = this.client === client;
      if (wasOurs) {
        this.client = undefined;
        this.transport = undefined;
      }
      if (wasOurs && !this.closedByUs) this.events.onClose?.();
    };
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => this.events.onToolsChanged?.());
    client.setNotificationHandler(PromptListChangedNotificationSchema, () => this.events.onListChanged?.('prompts'));
    client.setNotificationHandler(ResourceListChangedNotificationSchema, () => this.events.onListChanged?.('resources'));
    const relay = (n: { method: string; params?: Record<string, unknown> }) =>
      this.events.onNotification?.({ jsonrpc: '2.0', method: n.method, ...(n.params ? { params: n.params } : {}) });
    client.setNotificationHandler(ResourceUpdatedNotificationSchema, relay);
    client.setNotificationHandler(LoggingMessageNotificationSchema, relay);
    client.fallbackRequestHandler = async (request) => {
      throw new McpError(ErrorCode.MethodNotFound, `${SERVER_REQUEST_REFUSAL}: ${request.method}`);
    };
    const onAbort = () => void client.close().catch(() => {});
    signal?.addEventListener('abort', onAbort, { once: true });
    this.opening.add(client);
    try {
      await client.connect(transport);
    } catch (err) {
      await client.close().catch(() => {});
      if (epoch !== this.epoch || signal?.aborted) throw abandoned();
      throw new TunnelError('upstream_unavailable', `upstream ${this.name} did not start: ${(err as Error).message}`, { upstream: this.name }, { cause: err });
    } finally {
      this.opening.delete(client);
      signal?.removeEventListener('abort', onAbort);
    }
    if (epoch !== this.epoch || signal?.aborted) {
      await client.close().catch(() => {});
      throw abandoned();
    }
    this.client = client;
    this.transport = transport;
    this.capabilities = client.getServerCapabilities() ?? {};
  }

  async listTools(): Promise<ToolDefinition[]> {
    const client = this.live();
    const tools: ToolDefinition[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const res = await client.listTools(cursor === undefined ? {} : { cursor });
      tools.push(...(res.tools as ToolDefinition[]));
      if (tools.length > MAX_TOOLS_PER_UPSTREAM) {
        throw new TunnelError('upstream_too_many_tools', `upstream ${this.name} lists more than ${MAX_TOOLS_PER_UPSTREAM} tools`);
      }
      cursor = res.nextCursor;
      if (cursor === undefined) return tools;
    }
    throw new TunnelError('upstream_too_many_tools', `upstream ${this.name} pages tools/list more than ${MAX_TOOL_PAGES} times`);
  }

  /** Every page of one listing, bounded like tools/list. */
  async list(listing: Listing): Promise<Record<string, unknown>[]> {
    const client = this.live();
    const { method, key } = LISTINGS[listing];
    const items: Record<string, unknown>[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_TOOL_PAGES; page++) {
      const res = await client.request({ method, params: cursor === undefined ? {} : { cursor } }, ResultSchema.passthrough());
      const got = (res as Record<string, unknown>)[key];
      if (Array.isArray(got)) items.push(...got.filter((x): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x)));
      if (items.length > MAX_ITEMS_PER_LISTING) {
        throw new TunnelError('upstream_too_many_items', `upstream ${this.name} lists more than ${MAX_ITEMS_PER_LISTING} items in ${method}`);
      }
      const next = (res as Record<string, unknown>).nextCursor;
      if (typeof next !== 'string') return items;
      cursor = next;
    }
    throw new TunnelError('upstream_too_many_items', `upstream ${this.name} pages ${method} more than ${MAX_TOOL_PAGES} times`);
  }

  /**
   * Forwards one request. A JSON-RPC error from the server comes back as McpError (the server
   * answered: not an upstream failure); a dead connection or timeout as TunnelError.
   */
  async request(
    method: string,
    params: Record<string, unknown> | undefined,
    timeoutMs: number,
    signal?: AbortSignal,
    onProgress?: (progress: Record<string, unknown>) => void,
  ): Promise<Record<string, unknown>> {
    const client = this.live();
    // Progress restarts the timeout, so a request with progress also gets a total deadline. It
    // aborts through the signal rather than the SDK's maxTotalTimeout: that one is only checked
    // when progress arrives and never tells the server, while an abort sends notifications/cancelled.
    let deadline: AbortController | undefined;
    let deadlineTimer: NodeJS.Timeout | undefined;
    if (onProgress) {
      const controller = new AbortController();
      deadline = controller;
      const total = this.maxProgressRequestMs;
      deadlineTimer = setTimeout(
        () => controller.abort(new McpError(ErrorCode.RequestTimeout, `request exceeded its total timeout of ${total} ms`, { maxTotalTimeout: total })),
        total,
      );
    }
    const requestSignal = deadline && signal ? AbortSignal.any([signal, deadline.signal]) : (deadline?.signal ?? signal);
    try {
      // With a signal, the SDK sends notifications/cancelled upstream when it aborts. With a
      // progress callback it puts its own progressToken in _meta and calls us back with each
      // notifications/progress (each one also restarts the request's timeout).
      return await client.request({ method, ...(params ? { params } : {}) } as never, ResultSchema, {
        timeout: timeoutMs,
        ...(requestSignal ? { signal: requestSignal } : {}),
        ...(onProgress ? { onprogress: (p: Record<string, unknown>) => onProgress(p), resetTimeoutOnProgress: true } : {}),
      });
    } catch (err) {
      if (signal?.aborted) throw new TunnelError('cancelled', `the agent cancelled the request to ${this.name}`, { upstream: this.name });
      if (err instanceof McpError && err.code !== ErrorCode.ConnectionClosed && err.code !== ErrorCode.RequestTimeout) throw err;
      throw new TunnelError('upstream_unavailable', `upstream ${this.name} failed: ${(err as Error).message}`, { upstream: this.name }, { cause: err });
    } finally {
      clearTimeout(deadlineTimer);
    }
  }

  async close(): Promise<void> {
    this.closedByUs = true;
    this.epoch++;
    const clients = [this.client, ...this.opening];
    this.client = undefined;
    this.transport = undefined;
    await Promise.all(clients.map((c) => c?.close().catch(() => {})));
  }

  private live(): Client {
    if (!this.client) throw new TunnelError('upstream_unavailable', `upstream ${this.name} is not connected`, { upstream: this.name });
    return this.client;
  }
}
