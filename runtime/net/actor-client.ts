import WebSocket from 'ws';
import type { InspectionEvent } from 'xstate';
import { createSessionActor, type SessionOutbound } from '../../actors/session/index.ts';
import { fromUtf8, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { TunnelError } from '../mcp/errors.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { closeSocket, openGateway, type TunnelClient, type TunnelClientOptions } from './client.ts';

/**
 * The agent's end of the tunnel with its session run by the session actor
 * (machines/session.machine.ts bound in actors/session) instead of a bare SessionChannel: the
 * same frames on the wire, but the session's life (handshaking, established, closing, closed)
 * is an XState actor the inspector can watch. The session state lives in an in-memory store
 * owned by this client and closed with it.
 */

/** How long close() waits for the session actor to seal its close frame. */
export const ACTOR_CLOSE_TIMEOUT_MS = 5_000;

export async function connectTunnelWithActor(
  options: TunnelClientOptions & { inspect?: (event: InspectionEvent) => void },
): Promise<TunnelClient> {
  const now = options.now ?? Date.now;
  const { offer, ws } = await openGateway(options);

  const store = new SqliteSessionStore({ path: ':memory:' });
  let closed = false;
  let onClosedBySelf: (() => void) | undefined;
  const onOutput = (m: SessionOutbound) => {
    if (m.type === 'OUTBOUND') {
      if (ws.readyState === WebSocket.OPEN) ws.send(m.frame);
    } else if (m.type === 'RECEIVED') {
      client.onmessage?.(fromUtf8(m.plaintext));
    } else if (m.type === 'CLOSED' || m.type === 'FAILED') {
      if (m.type === 'CLOSED' && m.frame && ws.readyState === WebSocket.OPEN) ws.send(m.frame);
      onClosedBySelf?.();
      if (ws.readyState === WebSocket.OPEN) ws.close(1000, m.type === 'CLOSED' ? 'client_closed' : 'session_failed');
    }
    // REFUSED: a frame that does not open is dropped; the session is unchanged (transactional).
  };
  const actor = createSessionActor({
    crypto: options.crypto,
    identity: options.identity,
    store,
    start: { kind: 'initiate', offer: offer.opk ? { bundle: offer.bundle, opk: offer.opk } : { bundle: offer.bundle } },
    onOutput,
    now,
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  actor.start();
  // The handshake (initiateSession) runs in the actor: wait for it so bad bundles fail here.
  const started = await new Promise<{ sid: string; peer: string }>((resolve, reject) => {
    const sub = actor.subscribe((s) => {
      if (s.context.session) {
        sub.unsubscribe();
        resolve({ sid: toB64u(s.context.session.sid), peer: s.context.session.peer });
      } else if (s.status === 'done') {
        sub.unsubscribe();
        reject(new TunnelError(s.context.failure ?? 'handshake_failed', "the gateway's offer was refused"));
      }
    });
  }).catch((err: unknown) => {
    ws.terminate();
    void store.close();
    throw err;
  });

  const client: TunnelClient = {
    sid: started.sid,
    gatewayDid: started.peer,
    send(text: string) {
      if (closed || ws.readyState !== WebSocket.OPEN) throw new TunnelError('tunnel_closed', 'the tunnel is closed');
      actor.send({ type: 'SEND', plaintext: utf8(text) });
    },
    async close(reason = 'client_closed') {
      if (closed) return;
      if (actor.getSnapshot().status === 'active' && ws.readyState === WebSocket.OPEN) {
        await new Promise<void>((resolve) => {
          onClosedBySelf = resolve;
          setTimeout(resolve, ACTOR_CLOSE_TIMEOUT_MS).unref();
          actor.send({ type: 'CLOSE', reason });
        });
      }
      await closeSocket(ws);
    },
  };
  ws.on('message', (data, isBinary) => {
    if (!isBinary) actor.send({ type: 'DELIVER', frame: data.toString() });
  });
  ws.on('close', (code, reason) => {
    closed = true;
    // The socket is gone: let the actor close the session (its close frame has nowhere to go),
    // then release the store once the actor has finished with it.
    const release = () => {
      actor.stop();
      void store.close();
    };
    if (actor.getSnapshot().status === 'active') {
      actor.send({ type: 'CLOSE', reason: 'peer_gone' });
      const timer = setTimeout(release, ACTOR_CLOSE_TIMEOUT_MS);
      timer.unref();
      const sub = actor.subscribe({
        complete: () => {
          sub.unsubscribe();
          clearTimeout(timer);
          release();
        },
      });
      if (actor.getSnapshot().status !== 'active') {
        clearTimeout(timer);
        release();
      }
    } else release();
    client.onclose?.(`${code}${reason.length ? ` ${reason.toString()}` : ''}`);
  });
  ws.on('error', () => {});
  return client;
}
