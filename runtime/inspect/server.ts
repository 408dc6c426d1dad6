import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AnyStateMachine } from 'xstate';
import { TalosError } from '../errors.ts';
import { registerTalosMachines } from './describers.ts';
import { drawMachine, type MachineDrawing } from './layout.ts';
import { INSPECTOR_PAGE } from './page.ts';
import type { Recorder } from './recorder.ts';
import { decodeTrace, type TraceEvent, type TraceHeader } from './trace.ts';

/**
 * Serves the inspector page on loopback: live from a Recorder (snapshot + server-sent events)
 * or a recorded trace. Binds 127.0.0.1 by default: the page shows the system's structure.
 */
export const MAX_TRACE_UPLOAD_BYTES = 64 * 1024 * 1024;

export interface InspectorOptions {
  port?: number;
  host?: string;
  /** Live mode: the recorder passed as `inspect` to the runtime. */
  recorder?: Recorder;
  /** Trace mode: a recorded trace to step through. */
  trace?: { header: TraceHeader; events: TraceEvent[] };
  /** Machine definitions the page can draw (by machine id). */
  machines?: AnyStateMachine[];
}

export interface Inspector {
  url: string;
  close(): Promise<void>;
}

export async function startInspector(options: InspectorOptions): Promise<Inspector> {
  // Talos's own machines are always drawn and described safely (details, never contexts).
  if (options.recorder) registerTalosMachines(options.recorder);
  const drawings = new Map<string, MachineDrawing>();
  const drawingFor = (m: AnyStateMachine) => {
    if (!drawings.has(m.id)) drawings.set(m.id, drawMachine(m));
    return drawings.get(m.id)!;
  };
  const allDrawings = () => {
    for (const m of options.machines ?? []) drawingFor(m);
    for (const m of options.recorder?.machines.values() ?? []) drawingFor(m);
    return Object.fromEntries(drawings);
  };
  const streams = new Set<ServerResponse>();

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(body));
  };

  const readBody = (req: IncomingMessage) =>
    new Promise<string>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (c: Buffer) => {
        size += c.length;
        if (size > MAX_TRACE_UPLOAD_BYTES) {
          reject(new TalosError('trace_too_large', `a trace may be at most ${MAX_TRACE_UPLOAD_BYTES} bytes`));
          req.destroy();
        } else chunks.push(c);
      });
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });

  // DNS rebinding: a web page on attacker.example (re-resolved to 127.0.0.1) could read the API
  // from the user's browser. Only loopback names and the bind host are answered.
  const bracket = (h: string) => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h).toLowerCase();
  const allowedHosts = new Set(['127.0.0.1', 'localhost', '[::1]', bracket(options.host ?? '127.0.0.1')]);
  const hostAllowed = (host: string | undefined) => {
    const name = /^(\[[0-9a-f:.]+\]|[^:[\]]+)(?::\d+)?$/i.exec(host ?? '')?.[1];
    return name !== undefined && allowedHosts.has(name.toLowerCase());
  };

  const server = createServer(async (req, res) => {
    if (!hostAllowed(req.headers.host)) {
      json(res, 403, { error: 'the inspector answers only on 127.0.0.1, localhost or its bind host' });
      return;
    }
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    if (req.method === 'GET' && path === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(INSPECTOR_PAGE);
    } else if (req.method === 'GET' && path === '/api/snapshot') {
      if (options.recorder) json(res, 200, { mode: 'live', events: options.recorder.events(), drawings: allDrawings() });
      else json(res, 200, { mode: 'trace', header: options.trace?.header, events: options.trace?.events ?? [], drawings: allDrawings() });
    } else if (req.method === 'GET' && path === '/api/stream') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
      res.write(':ok\n\n');
      streams.add(res);
      req.on('close', () => streams.delete(res));
    } else if (req.method === 'POST' && path === '/api/decode-trace') {
      try {
        const trace = decodeTrace(await readBody(req));
        json(res, 200, { mode: 'trace', header: trace.header, events: trace.events, drawings: allDrawings() });
      } catch (err) {
        json(res, 400, { error: err instanceof TalosError ? err.message : 'could not read the trace' });
      }
    } else {
      json(res, 404, { error: 'not found' });
    }
  });

  const unsubscribe = options.recorder?.subscribe((event) => {
    if (event.kind === 'actor' && event.machine && !drawings.has(event.machine)) {
      const m = options.recorder!.machines.get(event.machine);
      if (m) for (const s of streams) s.write(`event: drawing\ndata: ${JSON.stringify(drawingFor(m))}\n\n`);
    }
    const line = `data: ${JSON.stringify(event)}\n\n`;
    for (const s of streams) s.write(line);
  });

  await new Promise<void>((resolve) => server.listen(options.port ?? 0, options.host ?? '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${port}/`,
    close: async () => {
      unsubscribe?.();
      for (const s of streams) s.end();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
