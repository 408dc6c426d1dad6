import type WebSocket from 'ws';
import type { CryptoProvider } from '../crypto/provider.ts';
import type { Identity } from '../identity/index.ts';
import { decodeEnvelope, initiateSession } from '../session/index.ts';
import { TunnelError } from '../mcp/errors.ts';
import { SessionChannel } from './channel.ts';
import { CONNECT_TIMEOUT_MS, openSocket, ReconnectingSocket } from './reconnecting-socket.ts';
import { OFFER_PATH, TUNNEL_PATH } from './server.ts';
import type { Offer } from './responder.ts';

export { CONNECT_TIMEOUT_MS };

/**
 * The agent's end of the tunnel: fetch the gateway's offer (bundle + one-time prekey) over
 * HTTP, check it and derive the session (runtime/session's initiateSession, which verifies the
 * bundle's signature, expiry and keys), then open the WebSocket. The first frames carry the
 * handshake until the gateway's first reply. A dropped socket is reopened with the next frame
 * and the same session goes on (reconnecting-socket.ts).
 */

/** Longest accepted offer document. */
export const MAX_OFFER_BYTES = 64 * 1024;

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
  /** Whether a frame sent now leaves at once (false while the socket is down: it waits for a reconnection). */
  readonly connected: boolean;
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
  if (!res.ok) {
    await res.body?.cancel().catch(() => {});
    throw new TunnelError('gateway_unreachable', `the gateway's offer answered HTTP ${res.status}`);
  }
  const text = await readLimited(res, MAX_OFFER_BYTES);
  try {
    return JSON.parse(text) as Offer;
  } catch {
    throw new TunnelError('bad_offer', 'the offer is not JSON');
  }
}

/** The body as UTF-8, read no further than `limit` bytes: a larger (or endless) one is refused as soon as it passes it. */
async function readLimited(res: Response, limit: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > limit) {
        await reader.cancel().catch(() => {});
        throw new TunnelError('bad_offer', `the offer is larger than ${limit} bytes`);
      }
      chunks.push(value);
    }
  } catch (err) {
    if (err instanceof TunnelError) throw err;
    throw new TunnelError('gateway_unreachable', `cannot read the gateway's offer: ${(err as Error).message}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Fetches the gateway's offer, checks it names the expected gateway, and opens the WebSocket
 * (each within CONNECT_TIMEOUT_MS): the first half of every agent-side connection.
 */
export async function openGateway(options: Pick<TunnelClientOptions, 'url' | 'expectDid'>): Promise<{ offer: Offer; url: string; ws: WebSocket }> {
  const urls = tunnelUrls(options.url);
  const offer = await fetchOffer(urls.offer);
  if (options.expectDid && offer.bundle?.did !== options.expectDid) {
    throw new TunnelError('wrong_gateway', 'the offer is signed by another identity than the expected gateway');
  }
  return { offer, url: urls.ws, ws: await openSocket(urls.ws) };
}

export async function connectTunnel(options: TunnelClientOptions): Promise<TunnelClient> {
  const now = options.now ?? Date.now;
  const { offer, url, ws } = await openGateway(options);
  let session;
  try {
    session = initiateSession(options.crypto, options.identity, offer.opk ? { bundle: offer.bundle, opk: offer.opk } : { bundle: offer.bundle }, now());
  } catch (err) {
    ws.terminate(); // a bundle refused (bad, expired): the socket opened for it is not left open
    throw err;
  }
  const channel = new SessionChannel(options.crypto, session);
  const socket = new ReconnectingSocket(url, ws, {
    frame: (frame) => {
      let text: string | undefined;
      try {
        text = channel.open(decodeEnvelope(frame), now()).text;
      } catch {
        return; // a frame that does not open is dropped; the session is unchanged (transactional)
      }
      if (text !== undefined) client.onmessage?.(text);
    },
    closed: (reason) => client.onclose?.(reason),
  });
  const client: TunnelClient = {
    sid: channel.sid,
    gatewayDid: session.peer,
    get connected() {
      return socket.connected;
    },
    send(text: string) {
      if (!socket.usable) throw new TunnelError('tunnel_closed', 'the tunnel is closed');
      socket.send(channel.seal(text));
    },
    async close(reason = 'client_closed') {
      if (!socket.usable) return;
      if (socket.connected) {
        try {
          socket.send(channel.sealClose(reason));
        } catch {
          /* the socket is going anyway */
        }
      }
      await socket.close();
      client.onclose?.('1000 client_closed');
    },
  };
  return client;
}
