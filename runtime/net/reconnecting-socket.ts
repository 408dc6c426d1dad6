import WebSocket from 'ws';
import { MAX_FRAME_BYTES } from '../session/index.ts';
import { TunnelError } from '../mcp/errors.ts';

/**
 * The agent's socket to the gateway, which outlives a dropped connection: a session is not
 * its socket (runtime/net/server.ts), so when the socket drops (the network, or a gateway
 * restart) the next frame to send opens a new one to the same URL, and the session goes on
 * with that frame as its proof of possession (no new handshake, same sid). Frames sealed
 * meanwhile wait in order. Reconnection is lazy: an open socket with nothing to say would be
 * closed by the gateway's handshake timeout.
 *
 * The gateway's refusals (close codes 4400-4499: bad frame, handshake refused, unknown
 * session, session moved) and its normal close (1000) end the session: no retry.
 */

/** Time allowed to open one socket (and, in client.ts, to fetch the offer). */
export const CONNECT_TIMEOUT_MS = 10_000;
/** Connection attempts per reconnection before the session is given up. */
export const RECONNECT_ATTEMPTS = 6;
/** Delay before the second attempt; doubled for each further one, up to RECONNECT_MAX_DELAY_MS. */
export const RECONNECT_BASE_DELAY_MS = 100;
export const RECONNECT_MAX_DELAY_MS = 2_000;
/** Frames waiting for a reconnection, at most; a send beyond fails (tunnel_backlog_full). */
export const MAX_QUEUED_FRAMES = 256;

export interface ReconnectingSocketEvents {
  frame(text: string): void;
  /** The session's connection is gone for good (the reason: close code and text, or reconnect_failed). */
  closed(reason: string): void;
}

/** Close codes after which the agent does not reconnect. */
function final(code: number): boolean {
  return code === 1000 || (code >= 4400 && code < 4500);
}

export class ReconnectingSocket {
  #ws: WebSocket;
  #queue: string[] = [];
  #reconnecting = false;
  #done = false;

  constructor(
    private readonly url: string,
    ws: WebSocket,
    private readonly events: ReconnectingSocketEvents,
  ) {
    this.#ws = ws;
    this.#bind(ws);
  }

  /** Whether the session may still carry frames (it may be reconnecting). */
  get usable(): boolean {
    return !this.#done;
  }

  /** Whether a frame would leave now (not queued). */
  get connected(): boolean {
    return !this.#done && this.#ws.readyState === WebSocket.OPEN;
  }

  send(frame: string): void {
    if (this.#done) throw new TunnelError('tunnel_closed', 'the tunnel is closed');
    if (this.#ws.readyState === WebSocket.OPEN && this.#queue.length === 0) {
      this.#ws.send(frame);
      return;
    }
    if (this.#queue.length >= MAX_QUEUED_FRAMES) throw new TunnelError('tunnel_backlog_full', `more than ${MAX_QUEUED_FRAMES} frames wait for the gateway`);
    this.#queue.push(frame);
    if (this.#ws.readyState !== WebSocket.OPEN && this.#ws.readyState !== WebSocket.CONNECTING) void this.#reconnect();
  }

  /** Closes for good (normal close, cut after the grace). */
  async close(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    this.#queue = [];
    await closeSocket(this.#ws);
  }

  #bind(ws: WebSocket): void {
    ws.on('message', (data, isBinary) => {
      if (!isBinary && ws === this.#ws) this.events.frame(data.toString());
    });
    ws.on('close', (code, reason) => {
      if (ws !== this.#ws || this.#done) return;
      if (final(code)) return this.#finish(`${code}${reason.length ? ` ${reason.toString()}` : ''}`);
      if (this.#queue.length > 0) void this.#reconnect();
    });
    ws.on('error', () => {});
  }

  async #reconnect(): Promise<void> {
    if (this.#reconnecting || this.#done) return;
    this.#reconnecting = true;
    try {
      for (let attempt = 0; attempt < RECONNECT_ATTEMPTS && !this.#done; attempt++) {
        if (attempt > 0) await sleep(Math.min(RECONNECT_BASE_DELAY_MS * 2 ** (attempt - 1), RECONNECT_MAX_DELAY_MS));
        const ws = await openSocket(this.url).catch(() => undefined);
        if (!ws) continue;
        if (this.#done) {
          ws.terminate();
          return;
        }
        this.#ws = ws;
        this.#bind(ws);
        for (const frame of this.#queue.splice(0)) ws.send(frame);
        return;
      }
      this.#finish('reconnect_failed');
    } finally {
      this.#reconnecting = false;
    }
  }

  #finish(reason: string): void {
    if (this.#done) return;
    this.#done = true;
    this.#queue = [];
    this.events.closed(reason);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Opens a WebSocket to the tunnel within CONNECT_TIMEOUT_MS. */
export function openSocket(url: string): Promise<WebSocket> {
  const ws = new WebSocket(url, { maxPayload: MAX_FRAME_BYTES });
  return new Promise<WebSocket>((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new TunnelError('gateway_unreachable', 'the WebSocket did not open in time'));
    }, CONNECT_TIMEOUT_MS);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(ws);
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(new TunnelError('gateway_unreachable', `the WebSocket failed: ${err.message}`));
    });
  });
}

/** How long a closing socket may take to finish its close handshake before it is cut. */
export const SOCKET_CLOSE_GRACE_MS = 1_000;

/** Closes the agent's socket normally and resolves once it is closed (cut after the grace). */
export function closeSocket(ws: WebSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    else ws.close(1000, 'client_closed');
    setTimeout(() => ws.terminate(), SOCKET_CLOSE_GRACE_MS).unref();
  });
}
