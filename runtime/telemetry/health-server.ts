import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TalosMetrics } from './metrics.ts';

/**
 * The runtime's HTTP probe server:
 *   GET /healthz  200 while the process is alive (503 when `live()` says otherwise)
 *   GET /readyz   200 when every readiness check passes, else 503; JSON names each check
 *   GET /metrics  Prometheus text from the runtime's own registry
 * Anything else is 404 (405 for a method other than GET/HEAD). Bodies never carry secrets: a
 * check reports ok/not ok and a short detail its author chose.
 */
export interface CheckResult {
  ok: boolean;
  detail?: string;
}
export type Check = () => CheckResult | boolean | Promise<CheckResult | boolean>;

export interface HealthServerOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1: probes are for the local orchestrator, not the world. */
  host?: string;
  /** Readiness checks by name (redis, store, upstreams, restart budget…). */
  checks?: Record<string, Check>;
  metrics?: TalosMetrics;
  live?: () => boolean;
  checkTimeoutMs?: number;
}

export interface HealthServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

/** A readiness check slower than this counts as failed ("timeout"). */
export const DEFAULT_CHECK_TIMEOUT_MS = 2000;
/** Idle keep-alive connections are closed after this long (probes reconnect cheaply). */
const KEEP_ALIVE_MS = 5000;

async function runCheck(check: Check, timeoutMs: number): Promise<CheckResult> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<CheckResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, detail: 'timeout' }), timeoutMs);
  });
  try {
    const result = await Promise.race([Promise.resolve().then(check), timeout]);
    return typeof result === 'boolean' ? { ok: result } : { ok: result.ok === true, ...(result.detail ? { detail: result.detail } : {}) };
  } catch {
    return { ok: false, detail: 'check failed' };
  } finally {
    clearTimeout(timer);
  }
}

/** Runs every check concurrently; ready when all pass. */
export async function readiness(checks: Record<string, Check>, timeoutMs = DEFAULT_CHECK_TIMEOUT_MS) {
  const names = Object.keys(checks);
  const results = await Promise.all(names.map((n) => runCheck(checks[n]!, timeoutMs)));
  const byName: Record<string, CheckResult> = {};
  names.forEach((n, i) => (byName[n] = results[i]!));
  return { ready: results.every((r) => r.ok), checks: byName };
}

function send(res: ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
const json = (res: ServerResponse, status: number, value: unknown) =>
  send(res, status, 'application/json', JSON.stringify(value) + '\n');

export async function startHealthServer(options: HealthServerOptions = {}): Promise<HealthServer> {
  const checks = options.checks ?? {};
  const timeoutMs = options.checkTimeoutMs ?? DEFAULT_CHECK_TIMEOUT_MS;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return json(res, 405, { error: 'method_not_allowed' });
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const alive = options.live ? options.live() : true;
      return json(res, alive ? 200 : 503, { status: alive ? 'alive' : 'dead' });
    }
    if (path === '/readyz') {
      const r = await readiness(checks, timeoutMs);
      options.metrics?.ready.set(r.ready ? 1 : 0);
      return json(res, r.ready ? 200 : 503, { status: r.ready ? 'ready' : 'not_ready', checks: r.checks });
    }
    if (path === '/metrics' && options.metrics) {
      return send(res, 200, options.metrics.contentType, await options.metrics.text());
    }
    return json(res, 404, { error: 'not_found' });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) json(res, 500, { error: 'internal' });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections(); // keep-alive sockets would hold close() open
      }),
  };
}
