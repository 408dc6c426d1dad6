import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { toB64u } from '../encoding/base64url.ts';
import { parseJson } from '../encoding/json.ts';
import { TalosError } from '../errors.ts';
import { decodeEnvelope, MAX_FRAME_BYTES, type Envelope, type Session } from '../session/index.ts';
import { SessionChannel } from './channel.ts';
import { SessionJournal, type SessionJournalStore } from './journal.ts';
import type { GatewayResponder } from './responder.ts';
import { sha256b64u } from '../mcp/pipeline.ts';
import { RPC_ERRORS } from '../mcp/errors.ts';
import { isRequest, toRpcMessage, type RequestId } from '../mcp/jsonrpc.ts';

/**
 * The tunnel's network face: one HTTP server on which
 *   GET  OFFER_PATH   returns the gateway's prekey bundle and one fresh one-time prekey (JSON),
 *   WS   TUNNEL_PATH  carries session frames, one envelope (runtime/session codec) per text message.
 * The first frame of a connection either opens a session (a prekey frame: the handshake plus
 * the first message) or resumes one the session store holds (any frame of it that decrypts
 * under the stored state: proof of possession, no new handshake). A session outlives its
 * connection: when the socket drops, or the gateway restarts over a durable store, the agent
 * reconnects and goes on. Every state change is journaled before it is visible (journal.ts).
 * Each decrypted plaintext is one JSON-RPC message (UTF-8 JSON), handed to `onMessage`; its
 * reply is sealed and sent back on the session's current connection.
 */
export const OFFER_PATH = '/.well-known/talos/offer';
export const TUNNEL_PATH = '/talos/v1/tunnel';
/**
 * Requests of one session being processed at once; more are refused (overloaded) until some
 * finish. Only requests are refused: a notification (notifications/cancelled above all, which
 * is needed exactly when the session is busy) always goes through.
 */
export const MAX_INFLIGHT_PER_SESSION = 256;
/**
 * Bytes queued on one connection for an agent that does not read them, at most (the default
 * of the `maxSendBufferBytes` option). Past it the connection is closed (4429 send_buffer_full):
 * the gateway's memory does not grow with a peer that sends requests but never reads.
 */
export const MAX_SEND_BUFFER_BYTES = 8 * 1024 * 1024;
/**
 * How long a connection closed for send_buffer_full may take to complete the close: its close
 * frame waits behind bytes the agent is not reading, so past this the socket is cut (else ws
 * keeps it, and those bytes, for 30 s).
 */
export const SEND_BUFFER_CLOSE_GRACE_MS = 2000;
/** Connections served at once. */
export const MAX_CONNECTIONS = 10_000;
/** A connection that has not opened or resumed a session within this time is closed. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Frames that arrive while a connection's first frame is being accepted, at most (more: overloaded). */
export const MAX_BACKLOG_FRAMES = 256;
/**
 * WebSocket close codes: 4400 bad frame, 4401 handshake refused, 4404 unknown session (nothing
 * to resume: the agent must open a new session), 4409 the session was resumed on another
 * connection, 4429 overloaded (too many frames before the session was accepted, or the agent
 * does not read what it is sent), 4500 the session store failed (the agent may resume later).
 * The agent clients retry none of 4400-4499.
 */
export const CLOSE_BAD_FRAME = 4400;
export const CLOSE_HANDSHAKE_REFUSED = 4401;
export const CLOSE_UNKNOWN_SESSION = 4404;
export const CLOSE_SESSION_MOVED = 4409;
export const CLOSE_OVERLOADED = 4429;
export const CLOSE_STORE_FAILED = 4500;

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
  /**
   * A new session (handshake accepted), before its first message is processed. `push` sends
   * unsolicited messages to it (on its current connection; dropped while it has none).
   */
  onOpen?(peer: TunnelPeer, msgHash: string, push: (text: string) => void): Promise<void> | void;
  /** A stored session went on over a new connection (no handshake). */
  onResume?(peer: TunnelPeer, push: (text: string) => void): void;
  /** The session ended ('closed': its close frame) or left its connection ('detached': it may resume). */
  onClose?(peer: TunnelPeer, reason: 'closed' | 'detached'): void;
  /** A frame or handshake was refused (already answered by closing the connection). */
  onRefused?(code: string, message: string): void;
  /**
   * A request refused over MAX_INFLIGHT_PER_SESSION, to be recorded (audited) before its
   * `overloaded` answer is sent. A rejection only loses the record: the answer is sent anyway.
   */
  onOverloaded?(peer: TunnelPeer, request: { id: RequestId; method: string }, msgHash: string): Promise<void>;
}

/** Where sessions live between connections: the handshake's store, read back on resume. */
export interface TunnelSessionStore extends SessionJournalStore {
  load(sid: Uint8Array): Promise<Session | undefined>;
}

export interface TunnelServer {
  url: string;
  port: number;
  server: Server;
  connections(): number;
  close(): Promise<void>;
}

/** A session in use: its channel, and the connection it currently talks over (if any). */
interface LiveSession {
  channel: SessionChannel;
  peer: TunnelPeer;
  ws: WebSocket | undefined;
  inflight: number;
}

export async function startTunnelServer(options: {
  host: string;
  port: number;
  responder: GatewayResponder;
  sessions: TunnelSessionStore;
  handlers: TunnelHandlers;
  /** Makes the channel of a resumed session (the gateway wraps it to trace decryptions). */
  channel?: (session: Session) => SessionChannel;
  now?: () => number;
  /** Overrides MAX_SEND_BUFFER_BYTES (tests use a small one). */
  maxSendBufferBytes?: number;
}): Promise<TunnelServer> {
  const { responder, handlers, sessions } = options;
  const now = options.now ?? Date.now;
  const maxSendBuffer = options.maxSendBufferBytes ?? MAX_SEND_BUFFER_BYTES;
  const channelOf = options.channel ?? ((s: Session) => new SessionChannel(responder.crypto, s));
  const http = createServer((req, res) => void serveHttp(req, res));
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const sockets = new Set<WebSocket>();
  const journal = new SessionJournal(sessions);
  /** Sessions attached to a connection or with requests in flight, by sid. */
  const live = new Map<string, LiveSession>();

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

  /** Drops a session from memory once nothing uses it (its state is in the journal). */
  const release = (s: LiveSession) => {
    if (!s.ws && s.inflight === 0 && live.get(s.peer.sid) === s) live.delete(s.peer.sid);
  };

  /** The journal could not store a state: nothing that depended on it happened; the agent may resume later. */
  const storeFailed = (s: LiveSession, err: Error) => {
    handlers.onRefused?.('store_failed', err.message);
    if (live.get(s.peer.sid) === s) live.delete(s.peer.sid);
    // This in-memory state is never used again (a resume reads the stored one): with no
    // connection, nothing more is sealed on it, and none of its states can reach the store.
    const ws = s.ws;
    s.ws = undefined;
    if (!ws) return;
    ws.close(CLOSE_STORE_FAILED, 'store_failed');
    handlers.onClose?.(s.peer, 'detached');
  };

  /**
   * The agent does not read what it is sent: its connection is closed and the session leaves it
   * at once (as on any drop; it may resume), so nothing more is queued on it. The close frame
   * waits behind the unread bytes; the socket is cut if the close is not completed in time.
   */
  const sendBufferFull = (s: LiveSession, ws: WebSocket) => {
    handlers.onRefused?.('send_buffer_full', `more than ${maxSendBuffer} bytes wait for the agent to read them`);
    if (s.ws === ws) {
      s.ws = undefined;
      handlers.onClose?.(s.peer, 'detached');
      release(s);
    }
    ws.close(CLOSE_OVERLOADED, 'send_buffer_full');
    const cut = setTimeout(() => ws.terminate(), SEND_BUFFER_CLOSE_GRACE_MS).unref();
    ws.once('close', () => clearTimeout(cut));
  };

  /** Seals `text` and sends it on the session's connection once the sealing state is stored. */
  const send = async (s: LiveSession, text: string, beforeSend?: TunnelReply['beforeSend']): Promise<void> => {
    if (!s.ws || s.channel.closed) {
      // Undeliverable (detached or ended), but the response is still audited: under the hash
      // of its text, as a cancelled one is, since no envelope carries it. Then it is dropped.
      if (beforeSend) await beforeSend(sha256b64u(text));
      return;
    }
    let frame = s.channel.seal(text);
    if (beforeSend) {
      const replacement = await beforeSend(sha256b64u(frame));
      if (!s.ws || s.channel.closed) return; // audited under the frame's hash; the agent skips its key
      if (replacement !== undefined) frame = s.channel.seal(replacement);
    }
    journal.write(s.channel.session, (err) => {
      if (err) return storeFailed(s, err);
      const ws = s.ws;
      if (!ws) return;
      ws.send(frame);
      if (ws.bufferedAmount > maxSendBuffer) sendBufferFull(s, ws);
    });
  };

  /** A request over the in-flight limit: recorded, then answered `overloaded`. */
  const refuseOverloaded = async (s: LiveSession, request: { id: RequestId; method: string }, msgHash: string) => {
    await handlers.onOverloaded?.(s.peer, request, msgHash).catch(() => {});
    await send(s, overloadedAnswer(request.id));
  };

  const dispatch = (s: LiveSession, text: string, msgHash: string) => {
    // The session ended (its close frame came in the same batch): nothing more runs on it.
    if (s.channel.closed) return;
    if (s.inflight >= MAX_INFLIGHT_PER_SESSION) {
      // Parsed only here, off the hot path: only requests are refused.
      const request = requestOf(text);
      if (request) {
        void refuseOverloaded(s, request, msgHash).catch((err: unknown) => handlers.onRefused?.('handler_failed', (err as Error).message));
        return;
      }
    }
    s.inflight++;
    handlers
      .onMessage(s.peer, text, msgHash, (pushed) => void send(s, pushed))
      .then((r) => (r === undefined ? undefined : typeof r === 'string' ? send(s, r) : send(s, r.text, r.beforeSend)))
      .catch((err: unknown) => handlers.onRefused?.('handler_failed', (err as Error).message))
      .finally(() => {
        s.inflight--;
        release(s);
      });
  };

  /**
   * What follows a frame opened on a session: its dispatch, or the session's end, only once
   * the state that consumed it is stored.
   */
  const afterOpen = (s: LiveSession, opened: { text?: string; closeReason?: string }, msgHash: string) => {
    if (opened.closeReason !== undefined) {
      journal.forget(s.peer.sid);
      live.delete(s.peer.sid);
      const ws = s.ws;
      s.ws = undefined;
      handlers.onClose?.(s.peer, 'closed');
      ws?.close(1000, 'peer_closed');
      return;
    }
    journal.write(s.channel.session, (err) => (err ? storeFailed(s, err) : dispatch(s, opened.text!, msgHash)));
  };

  /** The session a first frame names: live, or read back from the store (after pending writes). */
  const resumable = async (envelope: Envelope): Promise<LiveSession | undefined> => {
    const sid = toB64u(envelope.sid);
    let s = live.get(sid);
    if (s) return s;
    journal.flush(); // the store must hold the latest state before it is read back
    const stored = await sessions.load(envelope.sid);
    if (!stored || stored.closed) return undefined;
    s = live.get(sid); // attached meanwhile by another connection
    if (s) return s;
    s = { channel: channelOf(stored), peer: { did: stored.peer, sid }, ws: undefined, inflight: 0 };
    live.set(sid, s);
    return s;
  };

  function serveSocket(ws: WebSocket): void {
    sockets.add(ws);
    let session: LiveSession | undefined;
    let attaching: Promise<void> | undefined;
    const backlog: string[] = [];
    let closed = false;
    const timer = setTimeout(() => {
      if (!session) ws.close(CLOSE_HANDSHAKE_REFUSED, 'handshake_timeout');
    }, HANDSHAKE_TIMEOUT_MS);
    timer.unref();

    const refuse = (closeCode: number, code: string, message: string) => {
      handlers.onRefused?.(code, message);
      if (!closed) ws.close(closeCode, code.slice(0, 100));
    };

    /** This connection now carries `s` (a connection it had before is told it moved). */
    const attach = (s: LiveSession) => {
      if (s.ws && s.ws !== ws) s.ws.close(CLOSE_SESSION_MOVED, 'session_resumed_elsewhere');
      s.ws = ws;
      session = s;
      clearTimeout(timer);
    };

    const first = async (envelope: Envelope, msgHash: string) => {
      const known = await resumable(envelope);
      if (closed) {
        if (known) release(known);
        return;
      }
      if (known) {
        // Proof of possession: only a frame that decrypts under the stored state resumes it.
        let opened;
        try {
          opened = known.channel.open(envelope, now());
        } catch (err) {
          release(known);
          refuse(CLOSE_BAD_FRAME, codeOf(err), (err as Error).message);
          return;
        }
        attach(known);
        handlers.onResume?.(known.peer, (text) => void send(known, text));
        afterOpen(known, opened, msgHash);
        return;
      }
      if (envelope.type !== 'prekey') {
        refuse(CLOSE_UNKNOWN_SESSION, 'unknown_session', 'no such session to resume: open a new one');
        return;
      }
      // The handshake commits the session (and its first message's state) to the store.
      const { channel, text } = await responder.accept(envelope);
      const s: LiveSession = { channel, peer: { did: channel.peer, sid: channel.sid }, ws: undefined, inflight: 0 };
      // The session is recorded (audited) before its first message is processed.
      await handlers.onOpen?.(s.peer, msgHash, (text) => void send(s, text));
      if (closed) {
        // Dropped meanwhile: opened, so it is closed too (what onOpen set up is released). Stored: the agent may resume it.
        handlers.onClose?.(s.peer, 'detached');
        return;
      }
      live.set(s.peer.sid, s);
      attach(s);
      dispatch(s, text, msgHash);
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
      if (!session) {
        if (attaching) {
          if (backlog.length >= MAX_BACKLOG_FRAMES) refuse(CLOSE_OVERLOADED, 'overloaded', 'too many frames before the session was accepted');
          else backlog.push(frame);
          return;
        }
        attaching = first(envelope, msgHash).then(
          () => {
            if (session) for (const f of backlog.splice(0)) handleFrame(f);
          },
          (err: unknown) => refuse(envelope.type === 'prekey' ? CLOSE_HANDSHAKE_REFUSED : CLOSE_BAD_FRAME, codeOf(err), (err as Error).message),
        );
        return;
      }
      if (session.ws !== ws) return; // the session moved to another connection
      let opened;
      try {
        opened = session.channel.open(envelope, now());
      } catch (err) {
        // A forged or replayed frame changes nothing; the connection is not trusted further.
        refuse(CLOSE_BAD_FRAME, codeOf(err), (err as Error).message);
        return;
      }
      afterOpen(session, opened, msgHash);
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
      if (session && session.ws === ws) {
        session.ws = undefined;
        handlers.onClose?.(session.peer, 'detached');
        release(session);
      }
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
      // Sessions stay in the store: the agents resume them once a gateway serves again.
      for (const ws of sockets) ws.terminate();
      wss.close();
      journal.flush();
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

/** The message's id and method when it is a JSON-RPC request (what the in-flight limit refuses). */
function requestOf(text: string): { id: RequestId; method: string } | undefined {
  try {
    const m = toRpcMessage(parseJson(text, { allowFloats: true }));
    return isRequest(m) ? { id: m.id, method: m.method } : undefined;
  } catch {
    return undefined; // not a request: the handler answers it as usual (invalid_request)
  }
}

/** The JSON-RPC answer to a request over the in-flight limit. */
function overloadedAnswer(id: RequestId): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code: RPC_ERRORS.overloaded, message: `talos: overloaded: more than ${MAX_INFLIGHT_PER_SESSION} requests in flight`, data: { talos: { reason: 'overloaded' } } } });
}
