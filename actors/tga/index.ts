import { createActor, type InspectionEvent } from 'xstate';
import { tgaMachine } from '../../machines/tga.machine.ts';

export interface TgaServices {
  /** Called once when the TGA reaches `stopped`: closes stores, servers, connections. */
  release: () => void;
}

/** Binds the pure TGA machine to the runtime's services and starts it as the system root. */
export function startTga(services: TgaServices, options: { inspect?: (event: InspectionEvent) => void } = {}) {
  const machine = tgaMachine.provide({
    actions: { releaseResources: () => services.release() },
  });
  const actor = createActor(machine, { systemId: 'tga', ...(options.inspect ? { inspect: options.inspect } : {}) });
  actor.start();
  return actor;
}

export type TgaActor = ReturnType<typeof startTga>;
