import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, isAbsolute, resolve } from 'node:path';
import { validate } from '../../contracts/validate.ts';
import { parseJson } from '../encoding/json.ts';
import { TalosError, SchemaError } from '../errors.ts';
import type { RateRule } from '../limits/types.ts';

/** A talos.config.json that could not be read, parsed or validated; the message names the field. */
export class ConfigError extends TalosError {}

/** Largest config file read. */
export const MAX_CONFIG_BYTES = 1 << 20;

export type UpstreamConfig =
  | {
      name: string;
      transport: 'stdio';
      command: string;
      args: string[];
      env: Record<string, string>;
      cwd?: string;
      toolPrefix: string;
    }
  | { name: string; transport: 'http'; url: string; toolPrefix: string };

export interface BreakerConfig {
  timeoutMs: number;
  errorThresholdPercentage: number;
  resetTimeoutMs: number;
  volumeThreshold: number;
}

export interface LimitsConfig {
  rate: RateRule;
  /** undefined: no budget is enforced. */
  budget?: { perAgent: number; windowSeconds: number };
  defaultCost: number;
  tools: Record<string, { cost?: number; rate?: RateRule }>;
}

/** The resolved configuration: defaults filled in, paths absolute, environment applied. */
export interface TalosConfig {
  gateway: { host: string; port: number; keyFile?: string; name: string; cryptoThreads: number };
  trustedIssuers: string[];
  upstreams: UpstreamConfig[];
  limits: LimitsConfig;
  breaker: BreakerConfig;
  redis?: { url: string; prefix: string };
  audit: { store: string };
  pinsFile?: string;
  /** Which fields came from the environment (for the start-up report). */
  overrides: string[];
}

export const DEFAULTS = {
  host: '127.0.0.1',
  name: 'talos-gateway',
  rate: { capacity: 60, refillPerSecond: 10 },
  defaultCost: 1,
  budgetWindowSeconds: 86_400,
  breaker: { timeoutMs: 30_000, errorThresholdPercentage: 50, resetTimeoutMs: 5_000, volumeThreshold: 3 },
  redisPrefix: 'talos:',
  auditStore: 'memory',
  /** Ed25519 of cache misses on the other cores; the event loop keeps the first. */
  cryptoThreads: Math.max(1, availableParallelism() - 1),
} as const;

/** Environment variables that override fields of the file (applied before validation). */
export const ENV_OVERRIDES = {
  TALOS_GATEWAY_HOST: 'gateway.listen.host',
  TALOS_GATEWAY_PORT: 'gateway.listen.port',
  TALOS_GATEWAY_KEY: 'gateway.keyFile',
  TALOS_CRYPTO_THREADS: 'gateway.cryptoThreads',
  TALOS_TRUSTED_ISSUERS: 'trustedIssuers',
  TALOS_REDIS_URL: 'redis.url',
  TALOS_AUDIT_STORE: 'audit.store',
} as const;

type Json = Record<string, unknown>;

function setPath(obj: Json, path: string, value: unknown): void {
  const parts = path.split('.');
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    const next = cur[p];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[p] = {};
    cur = cur[p] as Json;
  }
  cur[parts.at(-1)!] = value;
}

function applyEnv(raw: Json, env: NodeJS.ProcessEnv): string[] {
  const applied: string[] = [];
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    let value: unknown = v;
    if (name === 'TALOS_GATEWAY_PORT') {
      if (!/^\d{1,5}$/.test(v)) throw new ConfigError('config_invalid', `${name} (gateway.listen.port) must be a port number`);
      value = Number(v);
    }
    if (name === 'TALOS_CRYPTO_THREADS') {
      if (!/^\d{1,2}$/.test(v)) throw new ConfigError('config_invalid', `${name} (gateway.cryptoThreads) must be a number of threads`);
      value = Number(v);
    }
    if (name === 'TALOS_TRUSTED_ISSUERS') value = v.split(',').map((s) => s.trim()).filter(Boolean);
    setPath(raw, path, value);
    applied.push(`${path} (from ${name})`);
  }
  return applied;
}

/** Parses, applies the environment, validates and resolves a config value. */
export function resolveConfig(input: unknown, options: { baseDir: string; env?: NodeJS.ProcessEnv; source?: string }): TalosConfig {
  const source = options.source ?? 'config';
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new ConfigError('config_invalid', `${source}: the configuration must be a JSON object`);
  }
  const raw = structuredClone(input) as Json;
  const overrides = applyEnv(raw, options.env ?? {});
  let c;
  try {
    c = validate('talos-config', raw);
  } catch (err) {
    if (err instanceof SchemaError) {
      const first = err.message.replace(/^talos-config: /, '');
      const fromEnv = overrides.find((o) => first.startsWith(o.split(' ')[0]!));
      throw new ConfigError('config_invalid', `${source}: ${first}${fromEnv ? ` [${fromEnv.slice(fromEnv.indexOf('(') )}]` : ''}`);
    }
    throw err;
  }
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(options.baseDir, p));
  const names = new Set<string>();
  const upstreams: UpstreamConfig[] = c.upstreams.map((u, i) => {
    if (names.has(u.name)) throw new ConfigError('config_invalid', `${source}: upstreams[${i}].name "${u.name}" is used twice`);
    names.add(u.name);
    const toolPrefix = u.toolPrefix ?? '';
    if (u.transport === 'stdio') {
      if (u.url !== undefined) throw new ConfigError('config_invalid', `${source}: upstreams[${i}].url is only for the http transport`);
      if (u.command === undefined) throw new ConfigError('config_invalid', `${source}: upstreams[${i}].command is required for the stdio transport`);
      return {
        name: u.name,
        transport: 'stdio',
        command: u.command,
        args: u.args ?? [],
        env: (u.env ?? {}) as Record<string, string>,
        ...(u.cwd !== undefined ? { cwd: abs(u.cwd) } : {}),
        toolPrefix,
      };
    }
    for (const f of ['command', 'args', 'env', 'cwd'] as const) {
      if (u[f] !== undefined) throw new ConfigError('config_invalid', `${source}: upstreams[${i}].${f} is only for the stdio transport`);
    }
    if (u.url === undefined) throw new ConfigError('config_invalid', `${source}: upstreams[${i}].url is required for the http transport`);
    return { name: u.name, transport: 'http', url: u.url, toolPrefix };
  });
  const l = c.limits ?? {};
  return {
    gateway: {
      host: c.gateway.listen.host ?? DEFAULTS.host,
      port: c.gateway.listen.port,
      ...(c.gateway.keyFile !== undefined ? { keyFile: abs(c.gateway.keyFile) } : {}),
      name: c.gateway.name ?? DEFAULTS.name,
      cryptoThreads: c.gateway.cryptoThreads ?? DEFAULTS.cryptoThreads,
    },
    trustedIssuers: c.trustedIssuers,
    upstreams,
    limits: {
      rate: l.rate ?? { ...DEFAULTS.rate },
      ...(l.budget ? { budget: { perAgent: l.budget.perAgent, windowSeconds: l.budget.windowSeconds ?? DEFAULTS.budgetWindowSeconds } } : {}),
      defaultCost: l.defaultCost ?? DEFAULTS.defaultCost,
      tools: (l.tools ?? {}) as LimitsConfig['tools'],
    },
    breaker: { ...DEFAULTS.breaker, ...(c.breaker ?? {}) },
    ...(c.redis ? { redis: { url: c.redis.url, prefix: c.redis.prefix ?? DEFAULTS.redisPrefix } } : {}),
    audit: { store: resolveStore(c.audit?.store ?? DEFAULTS.auditStore, abs) },
    ...(c.pins ? { pinsFile: abs(c.pins.file) } : {}),
    overrides,
  };
}

function resolveStore(store: string, abs: (p: string) => string): string {
  return store.startsWith('sqlite:') ? `sqlite:${abs(store.slice('sqlite:'.length))}` : store;
}

/** Reads talos.config.json (strict JSON: duplicate keys refused), then resolveConfig. */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): TalosConfig {
  let text: string;
  try {
    const buf = readFileSync(file);
    if (buf.length > MAX_CONFIG_BYTES) throw new ConfigError('config_invalid', `${file}: larger than ${MAX_CONFIG_BYTES} bytes`);
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    throw new ConfigError('config_unreadable', `${file}: ${(err as NodeJS.ErrnoException).code ?? 'cannot be read'}`);
  }
  let parsed: unknown;
  try {
    parsed = parseJson(text, { allowFloats: true });
  } catch (err) {
    throw new ConfigError('config_invalid', `${file}: not valid JSON (${(err as Error).message})`);
  }
  return resolveConfig(parsed, { baseDir: dirname(resolve(file)), env, source: file });
}

/** The cost and rate rule for one tool, from its entry or the defaults. */
export function toolLimits(limits: LimitsConfig, tool: string): { cost: number; rate: RateRule } {
  const t = Object.hasOwn(limits.tools, tool) ? limits.tools[tool] : undefined;
  return { cost: t?.cost ?? limits.defaultCost, rate: t?.rate ?? limits.rate };
}
