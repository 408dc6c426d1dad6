import type { AnyStateMachine } from 'xstate';
import { auditorMachine } from '../machines/auditor.machine.ts';
import { gatewayMachine } from '../machines/gateway.machine.ts';
import { sessionMachine } from '../machines/session.machine.ts';
import { tgaMachine } from '../machines/tga.machine.ts';
import { upstreamMachine } from '../machines/upstream.machine.ts';

/** Every machine definition of the actor system, for drawing in the inspector. */
export function allMachines(): AnyStateMachine[] {
  return [tgaMachine, gatewayMachine, auditorMachine, upstreamMachine, sessionMachine];
}
