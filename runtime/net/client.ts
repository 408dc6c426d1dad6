import WebSocket from 'ws';
import type { CryptoProvider } from '../crypto/provider.ts';
import type { Identity } from '../identity/index.ts';
import { decodeEnvelope, initiateSession, MAX_FRAME_BYTES } from '../session/index.ts';
import { TunnelError } from '../mcp/errors.ts';
import { SessionChannel } from './channel.ts';
import { OFFER_PATH, TUNNEL_PATH } from './server.ts';
import type { Offer } from './responder.ts';

/**
 * The agent's end of the tunnel: fetch the gateway's offer (bundle + one-time prekey) over
 * HTTP, check it and derive the session (runtime/session's initiateSession, which verifies the
 * bundle's signature, expiry and keys), then open the WebSocket. The first frames carry the
 * handshake until the gateway's first reply.
 */

/** Longest accepted offer document. */
export const MAX_OFFER_BYTES = 64 * 1024;
/** Time allowed to fetch the offer and open the socket. */
export const CONNECT_TIMEOUT_MS = 10_000;

export interface TunnelClientOptions {
  /** ws://host:port (the tunnel path is added when absent). */
  url: string;
  identity: Identity;
  crypto: CryptoProvider;
  /** The gateway DID the agent expects (refuses any other bundle); optional for demos. */
  expectDid?: string;
  now?: () => number;
}

export interface TunnelClient {
  readonly sid: string;
  readonly gatewayDid: string;
  send(text: string): void;
  onmessage?: (text: string) => void;
  onclose?: (reason: string) => void;
  close(reason?: string): Promise<void>;
}

export function tunnelUrls(url: string): { ws: string; offer: string } {
  const u = new URL(url);
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') throw new TunnelError('bad_gateway_url', 'the gateway URL must be ws:// or wss://');
  if (u.pathname === '/' || u.pathname === '') u.pathname = TUNNEL_PATH;
  const offer = new URL(u.href);
  offer.protocol = u.protocol === 'wss:' ? 'https:' : 'http:';
  offer.pathname = OFFER_PATH;
  return { ws: u.href, offer: offer.href };
}

export async function fetchOffer(url: string): Promise<Offer> {
  const res = await fetch(url, { signal: AbortSignal.timeout(CONNECT_TIMEOUT_MS) }).catch((err: unknown) => {
    throw new TunnelError('gateway_unreachable', `cannot fetch the gateway's offer: ${(err as Error).message}${(err as { cause?: Error }).cause ? ` (${(err as { cause: Error }).cause.message})` : ''}`);
  });
  const text = await res.text();
  if (!res.ok) throw new TunnelError('gateway_unreachable', `the gateway's offer answered HTTP ${res.status}`);
  if (text.length > MAX_OFFER_BYTES) throw new TunnelError('bad_offer', 'the offer is too large');
  try {
    return JSON.parse(text) as Offer;
  } catch {
    throw new TunnelError('bad_offer', 'the offer is not JSON');
  }
}

/**
 * Fetches the gateway's offer, checks it names the expected gateway, and opens the WebSocket
 * (both within CONNECT_TIMEOUT_MS): the first half of every agent-side connection.
 */
export async function openGateway(options: Pick<TunnelClientOptions, 'url' | 'expectDid'>): Promise<{ offer: Offer; ws: WebSocket }> {
  const urls = tunnelUrls(options.url);
  const offer = await fetchOffer(urls.offer);
  if (options.expectDid && offer.bundle?.did !== options.expectDid) {
    throw new TunnelError('wrong_gateway', 'the offer is signed by another identity than the expected gateway');
  }
  const ws = new WebSocket(urls.ws, { maxPayload: MAX_FRAME_BYTES });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new TunnelError('gateway_unreachable', 'the WebSocket did not open in time')), CONNECT_TIMEOUT_MS);
    ws.once('open', () => {
      clearTimeout(timer);
      resolve();
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(new TunnelError('gateway_unreachable', `the WebSocket failed: ${err.message}`));
    });
  });
  return { offer, ws };
}

/** How long a closing socket may take to finish its close handshake before it is cut. */
export const SOCKET_CLOSE_GRACE_MS = 1_000;

/** Closes the agent's socket normally and resolves once it is closed (cut after the grace). */
export function closeSocket(ws: WebSocket): Promise<void> {
  return new Promise<void>((resolve) => {
    if (ws.readyState === WebSocket.CLOSED) return resolve();
    ws.once('close', () => resolve());
    ws.close(1000, 'client_closed');
    setTimeout(() => ws.terminate(), SOCKET_CLOSE_GRACE_MS).unref();
  });
}

export async function connectTunnel(options: TunnelClientOptions): Promise<TunnelClient> {
  const now = options.now ?? Date.now;
  const { offer, ws } = await openGateway(options);
  const session = initiateSession(options.crypto, options.identity, offer.opk ? { bundle: offer.bundle, opk: offer.opk } : { bundle: offer.bundle }, now());
  const channel = new SessionChannel(options.crypto, session);
  let closed = false;
  const client: TunnelClient = {
    sid: channel.sid,
    gatewayDid: session.peer,
    send(text: string) {
      if (closed || ws.readyState !== WebSocket.OPEN) throw new TunnelError('tunnel_closed', 'the tunnel is closed');
      ws.send(channel.seal(text));
    },
    async close(reason = 'client_closed') {
      if (closed) return;
      if (ws.readyState === WebSocket.OPEN) {
        try {
          ws.send(channel.sealClose(reason));
        } catch {
          /* the socket is going anyway */
        }
      }
      await closeSocket(ws);
    },
  };
  ws.on('message', (data, isBinary) => {
    if (isBinary) return;
    try {
      const opened = channel.open(decodeEnvelope(data.toString()), now());
      if (opened.text !== undefined) client.onmessage?.(opened.text);
    } catch {
      // A frame that does not open is dropped; the session is unchanged (transactional).
    }
  });
  ws.on('close', (code, reason) => {
    closed = true;
    client.onclose?.(`${code}${reason.length ? ` ${reason.toString()}` : ''}`);
  });
  ws.on('error', () => {});
  return client;
}
