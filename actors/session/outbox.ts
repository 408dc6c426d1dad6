import type { SessionOutbound } from './index.ts';

/** Collects an actor's outputs and lets the test await the next one of a type. */
export function outbox() {
  const items: SessionOutbound[] = [];
  const waiters: { type: string; resolve: (m: SessionOutbound) => void }[] = [];
  return {
    items,
    push(m: SessionOutbound) {
      const i = waiters.findIndex((w) => w.type === m.type);
      if (i >= 0) waiters.splice(i, 1)[0]!.resolve(m);
      else items.push(m);
    },
    next<T extends SessionOutbound['type']>(type: T): Promise<Extract<SessionOutbound, { type: T }>> {
      const i = items.findIndex((m) => m.type === type);
      if (i >= 0) return Promise.resolve(items.splice(i, 1)[0] as Extract<SessionOutbound, { type: T }>);
      return new Promise((resolve) => waiters.push({ type, resolve: resolve as (m: SessionOutbound) => void }));
    },
  };
}
