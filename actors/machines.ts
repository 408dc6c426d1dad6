import type { AnyStateMachine } from 'xstate';
import { tgaMachine } from '../machines/tga.machine.ts';

/** Every machine definition of the actor system, for drawing in the inspector. */
export function allMachines(): AnyStateMachine[] {
  return [tgaMachine];
}
