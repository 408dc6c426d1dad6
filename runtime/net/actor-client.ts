import type { InspectionEvent } from 'xstate';
import { createSessionActor, type SessionOutbound } from '../../actors/session/index.ts';
import { fromUtf8, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { TunnelError } from '../mcp/errors.ts';
import { SqliteSessionStore } from '../store/session-sqlite.ts';
import { openGateway, type TunnelClient, type TunnelClientOptions } from './client.ts';
import { ReconnectingSocket } from './reconnecting-socket.ts';

/**
 * The agent's end of the tunnel with its session run by the session actor
 * (machines/session.machine.ts bound in actors/session) instead of a bare SessionChannel: the
 * same frames on the wire, but the session's life (handshaking, established, closing, closed)
 * is an XState actor the inspector can watch. The session state lives in an in-memory store
 * owned by this client and closed with it. A dropped socket is reopened with the next frame
 * and the same session goes on (reconnecting-socket.ts).
 */

/** How long close() waits for the session actor to seal its close frame. */
export const ACTOR_CLOSE_TIMEOUT_MS = 5_000;

export async function connectTunnelWithActor(
  options: TunnelClientOptions & { inspect?: (event: InspectionEvent) => void },
): Promise<TunnelClient> {
  const now = options.now ?? Date.now;
  const { offer, url, ws } = await openGateway(options);

  const store = new SqliteSessionStore({ path: ':memory:' });
  let onClosedBySelf: (() => void) | undefined;
  const socket = new ReconnectingSocket(url, ws, {
    frame: (frame) => actor.send({ type: 'DELIVER', frame }),
    closed: (reason) => shutdown(reason),
  });
  const onOutput = (m: SessionOutbound) => {
    if (m.type === 'OUTBOUND') {
      if (socket.usable) socket.send(m.frame);
    } else if (m.type === 'RECEIVED') {
      client.onmessage?.(fromUtf8(m.plaintext));
    } else if (m.type === 'CLOSED' || m.type === 'FAILED') {
      if (m.type === 'CLOSED' && m.frame && socket.connected) socket.send(m.frame);
      onClosedBySelf?.();
      void socket.close();
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
  }).catch(async (err: unknown) => {
    await socket.close();
    void store.close();
    throw err;
  });

  /** The session is over (closed here, or its connection is gone for good): release it once. */
  let over = false;
  const shutdown = (reason: string) => {
    if (over) return;
    over = true;
    // Let the actor close the session (its close frame has nowhere to go), then release the
    // store once the actor has finished with it.
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
    client.onclose?.(reason);
  };

  const client: TunnelClient = {
    sid: started.sid,
    gatewayDid: started.peer,
    get connected() {
      return socket.connected;
    },
    send(text: string) {
      if (over || !socket.usable) throw new TunnelError('tunnel_closed', 'the tunnel is closed');
      actor.send({ type: 'SEND', plaintext: utf8(text) });
    },
    async close(reason = 'client_closed') {
      if (over) return;
      if (actor.getSnapshot().status === 'active' && socket.connected) {
        await new Promise<void>((resolve) => {
          onClosedBySelf = resolve;
          setTimeout(resolve, ACTOR_CLOSE_TIMEOUT_MS).unref();
          actor.send({ type: 'CLOSE', reason });
        });
      }
      await socket.close();
      shutdown('1000 client_closed');
    },
  };
  return client;
}
