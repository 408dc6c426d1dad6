import type { CliCommand } from '../command.ts';
import { identityCommands } from './identity.ts';
import { inspectCommands } from './inspect.ts';
import { tunnelCommands } from './tunnel.ts';

/** Every `talos` command, gathered from the command modules of each area. */
export function allCommands(): CliCommand[] {
  return [...identityCommands, ...inspectCommands, ...tunnelCommands];
}
