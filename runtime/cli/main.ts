import { parseArgs } from 'node:util';
import { TalosError } from '../errors.ts';
import { UsageError, type CliCommand, type CliContext } from './command.ts';
import { allCommands } from './commands/index.ts';

/**
 * The `talos` command line: finds the longest command name matching the leading words, parses
 * its options strictly, and turns typed errors into a message and an exit code
 * (1: the operation was refused or failed; 2: the command was used wrongly).
 */
const GLOBAL_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
} as const;

/**
 * What to do about a refusal, by error code, for errors whose own message says only what went
 * wrong. Printed after the message (and as `hint` under --json).
 */
export const ERROR_HINTS: Record<string, string> = {
  config_unreadable: 'create a working folder with "talos init DIR", then pass --config DIR/talos.config.json',
  config_invalid: 'compare with the talos.config.json that "talos init" writes, or examples/talos.config.json',
  key_file_io: 'create a key file with "talos identity new --out FILE" (or "talos init DIR")',
  key_file_malformed: 'the file is not a Talos key file: create one with "talos identity new --out FILE"',
  key_file_permissions: 'key files must be private: chmod 600 FILE',
  gateway_unreachable: 'is the gateway running? start it with "talos gateway -c talos.config.json" and check --gateway',
  bad_gateway_url: 'give the gateway as ws://HOST:PORT (or wss://)',
  wrong_gateway: 'the gateway is not the one --gateway-did names: check the DID printed by "talos gateway"',
  gateway_start_failed: 'check the upstream commands and the audit store in talos.config.json (the log above names the failing part)',
  redis_unreachable: 'start Redis or fix redis.url in the configuration (or remove redis to use in-process limits)',
  store_unreachable: 'start the audit store\'s PostgreSQL server or fix the host and port in its URL',
  token_file_unreadable: 'give the file "talos init" or "talos token mint --out FILE" wrote',
  trace_unreadable: 'write a trace with "talos sim run SCENARIO --seed N" (see "talos sim list")',
  trace_bad_header: 'open a file written by "talos sim run" or saved from the inspector',
};

export function findCommand(commands: CliCommand[], words: string[]): { command?: CliCommand; rest: string[] } {
  let best: CliCommand | undefined;
  let bestLength = 0;
  for (const c of commands) {
    const parts = c.name.split(' ');
    if (parts.length > bestLength && parts.every((p, i) => words[i] === p)) {
      best = c;
      bestLength = parts.length;
    }
  }
  return { command: best, rest: words.slice(bestLength) };
}

export function commandHelp(c: CliCommand): string {
  const lines = [`talos ${c.name}: ${c.summary}`, '', `usage: ${c.usage}`, ''];
  if (c.options.length) {
    lines.push('options:');
    for (const o of c.options) {
      const flag = `${o.short ? `-${o.short}, ` : ''}--${o.name}${o.type === 'string' ? ' <value>' : ''}`;
      const def = o.default !== undefined ? ` (default: ${String(o.default)})` : '';
      lines.push(`  ${flag.padEnd(28)} ${o.description}${o.multiple ? ' (repeatable)' : ''}${def}`);
    }
  }
  lines.push('  --json                       machine-readable output', '  -h, --help                   this help', '');
  lines.push('examples:', ...c.examples.map((e) => `  ${e}`));
  return lines.join('\n') + '\n';
}

export function overviewHelp(commands: CliCommand[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const names = new Set(commands.map((c) => c.name));
  return [
    'talos: the trust layer for AI agents (identities, encrypted sessions, capabilities, audit)',
    '',
    'usage: talos <command> [options]     talos <command> --help for details and examples',
    '',
    'commands:',
    ...[...commands].sort((a, b) => a.name.localeCompare(b.name)).map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    ...(names.has('demo') && names.has('init')
      ? [
          'start here:',
          '  talos demo --inspect --pause 1500   watch a gateway allow and refuse calls, live in the browser',
          '  talos init my-talos                 a working gateway folder: configuration, keys, an agent token',
          '',
        ]
      : []),
  ].join('\n');
}

export async function runCli(argv: string[], ctx: CliContext, commands = allCommands()): Promise<number> {
  const words = argv.filter((a) => !a.startsWith('-'));
  const { command, rest: _rest } = findCommand(commands, words);
  const wantsHelp = argv.includes('--help') || argv.includes('-h');
  if (!command) {
    if (argv.length === 0 || wantsHelp || argv[0] === 'help') {
      ctx.stdout(overviewHelp(commands));
      return 0;
    }
    ctx.stderr(`error: unknown command "${words.join(' ')}"\n\n${overviewHelp(commands)}`);
    return 2;
  }
  if (wantsHelp) {
    ctx.stdout(commandHelp(command));
    return 0;
  }
  const nameLength = command.name.split(' ').length;
  // Drop the command's own words (they are the first non-option arguments).
  const args: string[] = [];
  let skipped = 0;
  for (const a of argv) {
    if (skipped < nameLength && !a.startsWith('-')) skipped++;
    else args.push(a);
  }
  try {
    const options = Object.fromEntries(
      command.options.map((o) => [
        o.name,
        { type: o.type, ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) },
      ]),
    );
    let parsed;
    try {
      parsed = parseArgs({ args, options: { ...options, ...GLOBAL_OPTIONS }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const values: Record<string, string | boolean | string[] | undefined> = { ...parsed.values };
    for (const o of command.options) if (values[o.name] === undefined && o.default !== undefined) values[o.name] = o.default;
    const expected = command.positionals ?? [];
    const required = expected.filter((p) => !p.endsWith('?') && !p.endsWith('...'));
    if (parsed.positionals.length < required.length) {
      throw new UsageError(`missing ${required.slice(parsed.positionals.length).map((p) => `<${p}>`).join(' ')}`);
    }
    if (!expected.some((p) => p.endsWith('...')) && parsed.positionals.length > expected.length) {
      throw new UsageError(`unexpected argument "${parsed.positionals[expected.length]}"`);
    }
    return await command.run({ options: values, positionals: parsed.positionals }, { ...ctx, json: Boolean(values.json) || ctx.json });
  } catch (caught) {
    const err = fsRefusal(caught) ?? caught;
    if (err instanceof UsageError) {
      ctx.stderr(`error: ${err.message}\n\nusage: ${command.usage}\nrun "talos ${command.name} --help" for options and examples\n`);
      return 2;
    }
    if (err instanceof TalosError) {
      const hint = ERROR_HINTS[err.code];
      if (ctx.json || argv.includes('--json')) {
        ctx.stdout(JSON.stringify({ error: { code: err.code, message: err.message, ...(hint ? { hint } : {}) } }) + '\n');
      }
      ctx.stderr(`error [${err.code}]: ${err.message}\n${hint ? `  what to do: ${hint}\n` : ''}`);
      return 1;
    }
    throw err;
  }
}

/**
 * A Node filesystem error (a missing folder, a directory where a file was expected) is ordinary
 * bad input, not a bug: it becomes a one-line `io` refusal instead of a stack trace.
 */
function fsRefusal(err: unknown): TalosError | undefined {
  const e = err as NodeJS.ErrnoException | null;
  if (typeof e !== 'object' || e === null || typeof e.code !== 'string' || typeof e.syscall !== 'string') return undefined;
  // Node's message is "CODE: description, syscall 'path'": keep the description.
  const what = /^[A-Z0-9_]+: ([^,]+),/.exec(e.message ?? '')?.[1];
  const path = typeof e.path === 'string' ? ` ${e.path}` : '';
  return new TalosError('io', `cannot ${e.syscall}${path}: ${e.code}${what ? ` (${what})` : ''}`, { cause: err });
}

export function processContext(): CliContext {
  return {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    env: process.env,
    cwd: process.cwd(),
    json: false,
    interactive: Boolean(process.stderr.isTTY),
  };
}
