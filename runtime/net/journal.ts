import { toB64u } from '../encoding/base64url.ts';
import type { Session } from '../session/index.ts';

/**
 * The tunnel's write-ahead journal of session states (contracts/SPEC.md section 5, "Resuming
 * a tunnel session"). A state is written BEFORE anything that depends on it is visible: a
 * sealed frame leaves only once the state that sealed it is stored (a restart never reuses a
 * message key), and an opened frame's plaintext is handed on only once the state that
 * consumed it is stored (a restart never accepts the same frame twice).
 *
 * Writes are batched: every state written during one event-loop turn is committed in one
 * transaction (the latest state per session), then the actions that waited for it run in the
 * order they were queued. If the commit fails, the waiting actions are told so and must not
 * do what they waited to do.
 */
export interface SessionJournalStore {
  /** Writes (or, for null, deletes) sessions by sid, all or nothing. */
  commitSessions(writes: ReadonlyMap<string, Session | null>): void;
}

export type JournalAction = (error?: Error) => void;

export class SessionJournal {
  #writes = new Map<string, Session | null>();
  #waiting: JournalAction[] = [];
  #scheduled = false;

  constructor(private readonly store: SessionJournalStore) {}

  /** Queues `session` for the next commit; `then` runs once it is stored (or with the error). */
  write(session: Session, then: JournalAction): void {
    this.#writes.set(toB64u(session.sid), session);
    this.#waiting.push(then);
    this.#schedule();
  }

  /** Queues a session's removal (it closed: nothing may resume it). */
  forget(sid: string): void {
    this.#writes.set(sid, null);
    this.#schedule();
  }

  /** Commits what is queued now (also what the scheduled turn would have done). */
  flush(): void {
    this.#scheduled = false;
    if (this.#writes.size === 0 && this.#waiting.length === 0) return;
    const writes = this.#writes;
    const waiting = this.#waiting;
    this.#writes = new Map();
    this.#waiting = [];
    let error: Error | undefined;
    try {
      this.store.commitSessions(writes);
    } catch (err) {
      error = err as Error;
    }
    for (const then of waiting) then(error);
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // After the current turn's I/O callbacks: every frame of this turn shares one commit.
    setImmediate(() => this.flush());
  }
}
