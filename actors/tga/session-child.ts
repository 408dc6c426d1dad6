import type { InspectionEvent } from 'xstate';
import type { SessionStart } from '../../machines/session.machine.ts';
import { TalosError } from '../../runtime/errors.ts';
import { createSessionActor, type SessionActor, type SessionActorOptions } from '../session/index.ts';
import { serviceChild, type StopTracker } from './service-child.ts';

/**
 * A session actor supervised by the TGA. The first start is the one asked for (initiate,
 * accept); once the session exists its id is remembered, and every restart resumes it from the
 * session store (each operation committed there before its output left, so the store holds the
 * last state the peer may have seen). A FAILED session (its store failed) crashes the child and
 * the TGA restarts it under the restart budget; a CLOSED one ends the child and is removed.
 * Operations sent while the actor restarts are refused with `session_restarting`: the owner
 * retries them (nothing of a refused operation reached the peer).
 */
export type SupervisedSessionOptions = Pick<SessionActorOptions, 'crypto' | 'identity' | 'store' | 'start' | 'onOutput' | 'idleTimeoutMs' | 'now'>;

export class SessionHandle {
  sid: Uint8Array | undefined;
  current: SessionActor | undefined;
  starts = 0;
  constructor(
    readonly id: string,
    readonly options: SupervisedSessionOptions,
  ) {}

  private actor(): SessionActor {
    const a = this.current;
    if (!a || a.getSnapshot().status !== 'active') throw new TalosError('session_restarting', `session ${this.id} is restarting; retry`);
    return a;
  }
  send(plaintext: Uint8Array): void {
    this.actor().send({ type: 'SEND', plaintext });
  }
  deliver(frame: string): void {
    this.actor().send({ type: 'DELIVER', frame });
  }
  close(reason?: string): void {
    this.actor().send({ type: 'CLOSE', ...(reason ? { reason } : {}) });
  }
}

export interface SessionChildInput {
  id: string;
  handle: SessionHandle;
}

export function sessionChild(stops: StopTracker, onClosed: (id: string) => void, inspect?: (event: InspectionEvent) => void) {
  return serviceChild<SessionChildInput>(
    'session',
    async ({ handle }, fail) => {
      const { options } = handle;
      const start: SessionStart = handle.sid ? { kind: 'resume', sid: handle.sid } : options.start;
      let actor: SessionActor | undefined = undefined;
      actor = createSessionActor({
        crypto: options.crypto,
        identity: options.identity,
        store: options.store,
        start,
        ...(options.idleTimeoutMs !== undefined ? { idleTimeoutMs: options.idleTimeoutMs } : {}),
        ...(options.now ? { now: options.now } : {}),
        ...(inspect ? { inspect } : {}),
        onOutput: (m) => {
          if (m.type === 'FAILED') {
            fail(new TalosError(m.code, `session ${handle.id} failed (${m.code})`));
            return;
          }
          options.onOutput(m);
          if (m.type === 'CLOSED') onClosed(handle.id);
        },
      });
      actor.subscribe({
        next: (s) => {
          if (!handle.sid && s.context.session) handle.sid = s.context.session.sid;
        },
        error: (err) => fail(err),
      });
      actor.start();
      handle.current = actor;
      handle.starts++;
      return {
        stop: async () => {
          if (handle.current === actor) handle.current = undefined;
          actor!.stop();
        },
      };
    },
    stops,
  );
}
