import { assign, setup } from 'xstate';
import type { ChildKind, TgaEvent } from '../actors/messages.ts';

/**
 * The Talos Governance Agent: the root of every runtime's actor tree. Pure: children and
 * effects are named here and bound in actors/tga. It tracks the status of each child it owns;
 * the runtime is ready while it runs and no child is down.
 */
export interface ChildStatus {
  kind: ChildKind;
  status: 'up' | 'down';
  lastFault?: string;
}

export interface TgaContext {
  children: Record<string, ChildStatus>;
}

export const tgaMachine = setup({
  types: {
    context: {} as TgaContext,
    events: {} as TgaEvent,
  },
  actions: {
    /** Effect: release resources owned by the runtime (bound in actors/tga). */
    releaseResources: () => {},
  },
}).createMachine({
  id: 'tga',
  context: { children: {} },
  initial: 'running',
  states: {
    running: {
      on: {
        'child.up': {
          actions: assign({
            children: ({ context, event }) => ({
              ...context.children,
              [event.id]: { kind: event.kind, status: 'up' },
            }),
          }),
        },
        'child.fault': {
          actions: assign({
            children: ({ context, event }) => ({
              ...context.children,
              [event.id]: { kind: event.kind, status: 'down', lastFault: event.code },
            }),
          }),
        },
        'tga.stop': 'stopped',
      },
    },
    stopped: {
      type: 'final',
      entry: 'releaseResources',
    },
  },
});

export function isReady(snapshot: { value: unknown; context: TgaContext }): boolean {
  return snapshot.value === 'running' && Object.values(snapshot.context.children).every((c) => c.status === 'up');
}
