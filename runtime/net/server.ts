import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { parseJson } from '../encoding/json.ts';
import { TalosError } from '../errors.ts';
import { decodeEnvelope, MAX_FRAME_BYTES, type Envelope } from '../session/index.ts';
import type { SessionChannel } from './channel.ts';
import type { GatewayResponder } from './responder.ts';
import { sha256b64u } from '../mcp/pipeline.ts';
import { RPC_ERRORS } from '../mcp/errors.ts';

/**
 * The tunnel's network face: one HTTP server on which
 *   GET  OFFER_PATH   returns the gateway's prekey bundle and one fresh one-time prekey (JSON),
 *   WS   TUNNEL_PATH  carries session frames, one envelope (runtime/session codec) per text message.
 * The first frame of a connection must be a prekey frame (the handshake plus the first
 * message); the connection and the session end together. Each decrypted plaintext is one
 * JSON-RPC message (UTF-8 JSON), handed to `onMessage`; its reply is sealed and sent back.
 */
export const OFFER_PATH = '/.well-known/talos/offer';
export const TUNNEL_PATH = '/talos/v1/tunnel';
/** Requests of one session being processed at once; more are refused until some finish. */
export const MAX_INFLIGHT_PER_SESSION = 256;
/** Connections served at once. */
export const MAX_CONNECTIONS = 10_000;
/** A connection that has not completed its handshake within this time is closed. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** WebSocket close codes: 4400 bad frame, 4401 handshake refused, 4429 overloaded. */
export const CLOSE_BAD_FRAME = 4400;
export const CLOSE_HANDSHAKE_REFUSED = 4401;
export const CLOSE_OVERLOADED = 4429;

export interface TunnelPeer {
  did: string;
  sid: string;
}

/**
 * A reply. `beforeSend`, when given, is called with the hash of the sealed frame before it is
 * sent (the gateway audits responses by their envelope hash); it may return a replacement
 * text, which is sealed and sent instead.
 */
export interface TunnelReply {
  text: string;
  beforeSend?: (frameHash: string) => Promise<string | undefined>;
}

export interface TunnelHandlers {
  /** One decrypted message; resolve with the reply, or undefined for none. */
  onMessage(peer: TunnelPeer, text: string, msgHash: string, push: (text: string) => void): Promise<string | TunnelReply | undefined>;
  onOpen?(peer: TunnelPeer, msgHash: string): Promise<void> | void;
  onClose?(peer: TunnelPeer, reason: string): void;
  /** A frame or handshake was refused (already answered by closing the connection). */
  onRefused?(code: string, message: string): void;
}

export interface TunnelServer {
  url: string;
  port: number;
  server: Server;
  connections(): number;
  close(): Promise<void>;
}

export async function startTunnelServer(options: {
  host: string;
  port: number;
  responder: GatewayResponder;
  handlers: TunnelHandlers;
  now?: () => number;
}): Promise<TunnelServer> {
  const { responder, handlers } = options;
  const now = options.now ?? Date.now;
  const http = createServer((req, res) => void serveHttp(req, res));
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const sockets = new Set<WebSocket>();

  async function serveHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '').split('?')[0];
    if (req.method === 'GET' && path === OFFER_PATH) {
      try {
        const offer = await responder.offer();
        res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(JSON.stringify(offer));
      } catch (err) {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'offer_unavailable' }));
        handlers.onRefused?.('offer_unavailable', (err as Error).message);
      }
      return;
    }
    res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not_found' }));
  }

  http.on('upgrade', (req, socket, head) => {
    if ((req.url ?? '').split('?')[0] !== TUNNEL_PATH || sockets.size >= MAX_CONNECTIONS) {
      socket.end('HTTP/1.1 404 Not Found\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => serveSocket(ws));
  });

  function serveSocket(ws: WebSocket): void {
    sockets.add(ws);
    let channel: SessionChannel | undefined;
    let peer: TunnelPeer | undefined;
    let handshaking: Promise<void> | undefined;
    const backlog: string[] = [];
    let inflight = 0;
    let closed = false;
    const timer = setTimeout(() => {
      if (!channel) ws.close(CLOSE_HANDSHAKE_REFUSED, 'handshake_timeout');
    }, HANDSHAKE_TIMEOUT_MS);
    timer.unref();

    const refuse = (closeCode: number, code: string, message: string) => {
      handlers.onRefused?.(code, message);
      if (!closed) ws.close(closeCode, code.slice(0, 100));
    };

    const sendable = () => channel !== undefined && !closed && !channel.closed;
    const reply = async (r: string | TunnelReply | undefined): Promise<void> => {
      if (r === undefined || !sendable()) return;
      if (typeof r === 'string') {
        ws.send(channel!.seal(r));
        return;
      }
      let frame = channel!.seal(r.text);
      if (r.beforeSend) {
        const replacement = await r.beforeSend(sha256b64u(frame));
        if (!sendable()) return;
        if (replacement !== undefined) frame = channel!.seal(replacement);
      }
      ws.send(frame);
    };

    /** Unsolicited messages to the agent (progress notifications). */
    const push = (text: string) => {
      if (sendable()) ws.send(channel!.seal(text));
    };

    const dispatch = (text: string, msgHash: string) => {
      if (inflight >= MAX_INFLIGHT_PER_SESSION) {
        void reply(overloaded(text));
        return;
      }
      inflight++;
      handlers
        .onMessage(peer!, text, msgHash, push)
        .then(reply)
        .catch((err: unknown) => handlers.onRefused?.('handler_failed', (err as Error).message))
        .finally(() => inflight--);
    };

    const handleFrame = (frame: string) => {
      let envelope: Envelope;
      try {
        envelope = decodeEnvelope(frame);
      } catch (err) {
        refuse(CLOSE_BAD_FRAME, codeOf(err), (err as Error).message);
        return;
      }
      const msgHash = sha256b64u(frame);
      if (!channel) {
        if (handshaking) {
          backlog.push(frame);
          return;
        }
        handshaking = (async () => {
          try {
            const { channel: c, text } = await responder.accept(envelope);
            const p = { did: c.peer, sid: c.sid };
            // The session is recorded (audited) before its first message is processed.
            await handlers.onOpen?.(p, msgHash);
            channel = c;
            peer = p;
            clearTimeout(timer);
            dispatch(text, msgHash);
            for (const f of backlog.splice(0)) handleFrame(f);
          } catch (err) {
            refuse(CLOSE_HANDSHAKE_REFUSED, codeOf(err), (err as Error).message);
          }
        })();
        return;
      }
      let opened;
      try {
        opened = channel.open(envelope, now());
      } catch (err) {
        // A forged or replayed frame changes nothing; the connection is not trusted further.
        refuse(CLOSE_BAD_FRAME, codeOf(err), (err as Error).message);
        return;
      }
      if (opened.closeReason !== undefined) {
        ws.close(1000, 'peer_closed');
        return;
      }
      dispatch(opened.text!, msgHash);
    };

    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) {
        refuse(CLOSE_BAD_FRAME, 'frame_malformed', 'frames are text');
        return;
      }
      handleFrame(rawText(data));
    });
    ws.on('close', () => {
      closed = true;
      clearTimeout(timer);
      sockets.delete(ws);
      if (peer) handlers.onClose?.(peer, 'closed');
    });
    ws.on('error', () => {});
  }

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port, options.host, () => resolve());
  });
  const port = (http.address() as AddressInfo).port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    url: `ws://${host}:${port}${TUNNEL_PATH}`,
    port,
    server: http,
    connections: () => sockets.size,
    close: async () => {
      for (const ws of sockets) ws.terminate();
      wss.close();
      await new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
    },
  };
}

function rawText(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString('utf8');
  if (data instanceof ArrayBuffer) return Buffer.from(data).toString('utf8');
  return data.toString('utf8');
}

function codeOf(err: unknown): string {
  return err instanceof TalosError ? err.code : 'internal_error';
}

/** The JSON-RPC answer to a request over the in-flight limit (notifications get none). */
function overloaded(text: string): string | undefined {
  try {
    const m = parseJson(text, { allowFloats: true }) as { id?: unknown };
    if (m && typeof m === 'object' && (typeof m.id === 'string' || typeof m.id === 'number')) {
      return JSON.stringify({ jsonrpc: '2.0', id: m.id, error: { code: RPC_ERRORS.overloaded, message: `talos: overloaded: more than ${MAX_INFLIGHT_PER_SESSION} requests in flight`, data: { talos: { reason: 'overloaded' } } } });
    }
  } catch {
    /* not JSON: nothing to answer */
  }
  return undefined;
}
