import { createActor, type AnyActorLogic, type InspectionEvent } from 'xstate';
import { tgaMachine, type TgaInput } from '../../machines/tga.machine.ts';
import type { ChildKind } from '../messages.ts';

export interface TgaServices {
  /** Called once when the TGA reaches `stopped`: closes stores, servers, connections. */
  release: () => void;
  /** Told when the restart budget is spent (logs and metrics hook here). */
  onEscalation?: (child: string, code: string) => void;
  /** The logic of each kind of child the runtime runs. */
  children?: Partial<Record<ChildKind, AnyActorLogic>>;
}

/** Binds the pure TGA machine to the runtime's services and starts it as the system root. */
export function startTga(
  services: TgaServices,
  options: { inspect?: (event: InspectionEvent) => void; input?: TgaInput } = {},
) {
  const machine = tgaMachine.provide({
    actions: {
      releaseResources: () => services.release(),
      reportEscalation: (_, { child, code }) => services.onEscalation?.(child, code),
    },
    actors: services.children ?? {},
  });
  const actor = createActor(machine, {
    systemId: 'tga',
    input: options.input ?? {},
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  actor.start();
  return actor;
}

export type TgaActor = ReturnType<typeof startTga>;
