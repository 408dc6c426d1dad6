import type { CliCommand } from '../command.ts';
import { auditCommands } from './audit.ts';
import { identityCommands } from './identity.ts';
import { initCommands } from './init.ts';
import { inspectCommands } from './inspect.ts';
import { runCommands } from './run.ts';
import { simCommands } from './sim.ts';
import { tokenCommands } from './token.ts';
import { tunnelCommands } from './tunnel.ts';

/** Every `talos` command, gathered from the command modules of each area. */
export function allCommands(): CliCommand[] {
  return [...initCommands, ...identityCommands, ...tunnelCommands, ...runCommands, ...inspectCommands, ...tokenCommands, ...auditCommands, ...simCommands];
}
