import { createHash } from 'node:crypto';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { TunnelError } from './errors.ts';

/**
 * Tool pinning (defence against "rug pulls"): the first time a gateway sees a tool, it records
 * the SHA-256 of the canonical JSON of { name, description, inputSchema }. Later listings whose
 * hash differs are drift: the tool is withheld from agents and calls to it are refused until an
 * operator re-pins it. Tools seen for the first time later are pinned then (trust on first use).
 * Prompts are model-facing text too: they are pinned the same way ({ name, description,
 * arguments }), under the pin-store key `<upstream>/prompts` (no upstream name holds a `/`).
 */

export interface ToolDefinition {
  name: string;
  description?: string;
  inputSchema: unknown;
  [key: string]: unknown;
}

/** RFC 8785 canonical JSON for any JSON value (floats included: tool schemas may hold them). */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TunnelError('bad_tool_definition', 'a tool definition holds a non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (typeof value === 'object') {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj).filter((k) => obj[k] !== undefined).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  throw new TunnelError('bad_tool_definition', `a tool definition holds a ${typeof value}`);
}

/** The pinned fields only: other metadata (annotations, title) may change without drift. */
export function toolHash(def: ToolDefinition): string {
  const pinned = { name: def.name, description: def.description ?? null, inputSchema: def.inputSchema ?? null };
  return createHash('sha256').update(canonicalJson(pinned)).digest('hex');
}

/** A prompt as prompts/list gives it. */
export interface PromptDefinition {
  name: string;
  description?: string;
  arguments?: unknown;
  [key: string]: unknown;
}

export function promptHash(def: PromptDefinition): string {
  const pinned = { name: def.name, description: def.description ?? null, arguments: def.arguments ?? null };
  return createHash('sha256').update(canonicalJson(pinned)).digest('hex');
}

/** The pin-store key under which an upstream's prompts are pinned. */
export const promptPinKey = (upstream: string): string => `${upstream}/prompts`;

export interface PinStore {
  get(upstream: string, tool: string): string | undefined;
  set(upstream: string, tool: string, hash: string): void;
  delete(upstream: string, tool: string): void;
}

/** Pins held in memory, optionally mirrored to a JSON file so they survive restarts. */
export class FilePinStore implements PinStore {
  private readonly pins: Record<string, Record<string, string>>;
  constructor(private readonly file?: string) {
    this.pins = {};
    if (file) {
      let text: string | undefined;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new TunnelError('pins_unreadable', `${file} cannot be read`);
      }
      if (text !== undefined) {
        const parsed = JSON.parse(text) as unknown;
        if (typeof parsed !== 'object' || parsed === null) throw new TunnelError('pins_unreadable', `${file} is not a pin file`);
        for (const [u, tools] of Object.entries(parsed as Record<string, Record<string, string>>)) this.pins[u] = { ...tools };
      }
    }
  }
  get(upstream: string, tool: string): string | undefined {
    const u = this.pins[upstream];
    return u && Object.hasOwn(u, tool) ? u[tool] : undefined;
  }
  set(upstream: string, tool: string, hash: string): void {
    (this.pins[upstream] ??= {})[tool] = hash;
    this.save();
  }
  delete(upstream: string, tool: string): void {
    if (this.pins[upstream]) delete this.pins[upstream][tool];
    this.save();
  }
  private save(): void {
    if (!this.file) return;
    // Write then rename: a crash never leaves a half-written pin file.
    writeFileSync(`${this.file}.tmp`, JSON.stringify(this.pins, null, 2));
    renameSync(`${this.file}.tmp`, this.file);
  }
}

export interface DriftReport {
  upstream: string;
  tool: string;
  pinned: string;
  seen: string;
}

/**
 * Compares a listing with the pins kept under `key`: new definitions are pinned, changed ones
 * reported as drift (`tool` names the tool or prompt). Tools by default; prompts with
 * `promptHash` and `promptPinKey(upstream)`.
 */
export function checkPins<D extends { name: string }>(
  upstream: string,
  defs: D[],
  store: PinStore,
  hash: (def: D) => string = toolHash as unknown as (def: D) => string,
  key: string = upstream,
): { accepted: D[]; drift: DriftReport[] } {
  const accepted: D[] = [];
  const drift: DriftReport[] = [];
  for (const def of defs) {
    const seen = hash(def);
    const pinned = store.get(key, def.name);
    if (pinned === undefined) {
      store.set(key, def.name, seen);
      accepted.push(def);
    } else if (pinned === seen) accepted.push(def);
    else drift.push({ upstream, tool: def.name, pinned, seen });
  }
  return { accepted, drift };
}
