import { renameSync, writeFileSync } from 'node:fs';
import { TalosError } from '../errors.ts';

/** What a command sees of the world: injectable so tests capture output instead of printing. */
export interface CliContext {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** --json was given: print one machine-readable JSON document on stdout. */
  json: boolean;
  /** Standard error is a terminal: progress bars may be drawn. */
  interactive: boolean;
}

export interface CliOption {
  name: string;
  short?: string;
  type: 'string' | 'boolean';
  multiple?: boolean;
  description: string;
  default?: string | boolean;
}

export type OptionValues = Record<string, string | boolean | string[] | undefined>;

export interface CliCommand {
  /** Words after `talos`, e.g. 'token mint'. */
  name: string;
  summary: string;
  usage: string;
  examples: string[];
  options: CliOption[];
  positionals?: string[];
  run(args: { options: OptionValues; positionals: string[] }, ctx: CliContext): Promise<number>;
}

/** Wrong arguments: printed with the command's usage, exit code 2. */
export class UsageError extends TalosError {
  constructor(message: string) {
    super('usage', message);
  }
}

/** Reads a string option that must be present. */
export function requireString(options: OptionValues, name: string): string {
  const v = options[name];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${name} is required`);
  return v;
}

export function optionalString(options: OptionValues, name: string): string | undefined {
  const v = options[name];
  return typeof v === 'string' ? v : undefined;
}

export function stringList(options: OptionValues, name: string): string[] {
  const v = options[name];
  if (Array.isArray(v)) return v;
  return typeof v === 'string' ? [v] : [];
}

/** Prints `value` as JSON when --json is set, else the human text. */
export function output(ctx: CliContext, value: unknown, human: () => string): void {
  ctx.stdout(ctx.json ? JSON.stringify(value, null, 2) + '\n' : human().replace(/\n?$/, '\n'));
}

/** Owner read/write only: keys, tokens, witness state. */
const PRIVATE_FILE_MODE = 0o600;

/**
 * Writes a file only its owner can read, atomically: a new file (mode 0600 from its creation)
 * renamed over `path`, so an existing file's content and mode are replaced together and a
 * failed write leaves it as it was.
 */
export function writePrivateFile(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    writeFileSync(tmp, text, { mode: PRIVATE_FILE_MODE });
  } catch (err) {
    // Name the file the user asked for, not the temporary one.
    throw Object.assign(err as Error, { path });
  }
  renameSync(tmp, path);
}
