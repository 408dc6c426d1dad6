import { fromPromise, type PromiseActorLogic } from 'xstate';
import type { ChildKind } from '../messages.ts';

/**
 * A supervised child that runs a service (an auditor, an upstream, a gateway, a job runner) as
 * an actor the TGA can restart. The child's promise never resolves while the service runs:
 *   - the service calls `fail(err)` when it breaks for good: the service is stopped, then the
 *     child rejects, and the TGA (its parent) decides: restart or escalate;
 *   - the TGA stops the child (restart, removal, shutdown): the service is stopped.
 * A restarted child's start waits until its predecessor has released what it held (a listening
 * port, a SQLite file, a child process are released before they are taken again): each child
 * holds its id in the StopTracker from before its start until its service has stopped or its
 * start failed, so a predecessor still inside start() is waited for too.
 */
export interface RunningService {
  stop(): Promise<void>;
}

export type ServiceStart<I> = (input: I, fail: (error: unknown) => void) => Promise<RunningService>;

export interface ServiceInput {
  id: string;
}

/**
 * What children hold, by child id (from before their start until released): restarts wait for
 * their predecessors, the runtime's stop drains them.
 */
export class StopTracker {
  readonly #pending = new Map<string, Promise<void>>();

  track(id: string, stopping: Promise<void>): Promise<void> {
    const settled = stopping.catch(() => {});
    const chained = (this.#pending.get(id) ?? Promise.resolve()).then(() => settled);
    this.#pending.set(id, chained);
    void chained.then(() => {
      if (this.#pending.get(id) === chained) this.#pending.delete(id);
    });
    return chained;
  }

  /**
   * Takes `id` for a new holder: `predecessors` settles once every earlier holder has released;
   * this one holds until `release()`.
   */
  hold(id: string): { predecessors: Promise<void>; release: () => void } {
    const predecessors = this.settled(id);
    let release!: () => void;
    void this.track(id, new Promise<void>((resolve) => (release = resolve)));
    return { predecessors, release };
  }

  settled(id: string): Promise<void> {
    return this.#pending.get(id) ?? Promise.resolve();
  }

  async drain(): Promise<void> {
    while (this.#pending.size > 0) await Promise.all([...this.#pending.values()]);
  }
}

export function serviceChild<I extends ServiceInput>(
  kind: ChildKind,
  start: ServiceStart<I>,
  stops: StopTracker,
): PromiseActorLogic<void, I> {
  return fromPromise<void, I>(async ({ input, signal, system }) => {
    // Held before the start: a successor started while this one is still starting waits for it.
    const { predecessors, release } = stops.hold(input.id);
    let service: RunningService;
    let reportFault: (error: unknown) => void = () => {};
    let faulted: unknown;
    const fail = (error: unknown) => {
      faulted ??= error ?? new Error('service failed');
      reportFault(faulted);
    };
    try {
      await predecessors;
      if (signal.aborted) return release();
      service = await start(input, fail);
    } catch (err) {
      release();
      throw err;
    }
    let stopping: Promise<void> | undefined;
    const stop = () => (stopping ??= service.stop().catch(() => {}).finally(release));
    if (signal.aborted) {
      void stop();
      return;
    }
    await new Promise<void>((resolve, reject) => {
      signal.addEventListener(
        'abort',
        () => {
          void stop();
          resolve();
        },
        { once: true },
      );
      reportFault = (error) => {
        void stop();
        reject(error);
      };
      if (faulted !== undefined) reportFault(faulted);
      else system.get('tga')?.send({ type: 'child.up', id: input.id, kind });
    });
  });
}
