import { diffieHellman, generateKeyPairSync } from 'node:crypto';
import { cpus } from 'node:os';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { hmacSha256Small } from '../runtime/crypto/sha256-small.ts';

/**
 * The shape every benchmark writes to bench/results/<name>.json. Metrics are measured in the
 * same run as their baseline; ratios are metric / baseline (or as the benchmark documents).
 */
export interface BenchResult {
  name: string;
  metrics: Record<string, number>;
  baseline: Record<string, number>;
  ratios: Record<string, number>;
  targets?: Record<string, { value: number; op: '>=' | '<='; met: boolean }>;
  notes?: string[];
  env: { node: string; cpu: string; cores: number; date: string; host: HostReference };
}

/**
 * What this host does per unit of time, measured when the result is written: sessions run on
 * different hosts whose speed differs up to ~2x, so absolute figures from two results compare
 * only through these. One native operation (OpenSSL X25519, the cost a DH ratchet step is
 * made of) and one JavaScript one (the short HMAC-SHA-256 every ratchet message computes).
 */
export interface HostReference {
  x25519_dh_us: number;
  js_hmac_sha256_us: number;
}

export type Benchmark = (args: string[]) => Promise<Omit<BenchResult, 'env' | 'name'>>;

const resultsDir = join(dirname(fileURLToPath(import.meta.url)), 'results');

export function environment(): BenchResult['env'] {
  const cpu = cpus();
  return { node: process.version, cpu: cpu[0]?.model ?? 'unknown', cores: cpu.length, date: new Date().toISOString(), host: hostReference() };
}

function hostReference(): HostReference {
  const [a, b] = [generateKeyPairSync('x25519'), generateKeyPairSync('x25519')];
  const dh = { privateKey: a.privateKey, publicKey: b.publicKey };
  const key = new Uint8Array(32).fill(7);
  const data = new Uint8Array(32).fill(9);
  const us = (opsPerS: number) => Number((1e6 / opsPerS).toFixed(3));
  return {
    x25519_dh_us: us(opsPerSecond(() => diffieHellman(dh), 300, 4)),
    js_hmac_sha256_us: us(opsPerSecond(() => hmacSha256Small(key, data), 300)),
  };
}

/** Runs `fn` repeatedly for about `ms` milliseconds (after a warm-up) and returns ops/s. */
export function opsPerSecond(fn: () => unknown, ms = 500, batch = 16): number {
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warmEnd) for (let i = 0; i < batch; i++) fn();
  let ops = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
    now = performance.now();
  }
  return (ops * 1000) / (now - start);
}

/**
 * Ops per second of this process's CPU time (process.cpuUsage) over about `ms` of wall clock:
 * on a shared, loaded machine the wall-clock rate mostly measures how often the scheduler runs
 * us; this one does not. Report it beside the wall-clock figure, never instead of it.
 */
export function opsPerCpuSecond(fn: () => unknown, ms: number, batch = 16, warmup = 200): number {
  for (let i = 0; i < warmup; i++) fn();
  const start = process.cpuUsage();
  const wallEnd = performance.now() + ms;
  let ops = 0;
  while (performance.now() < wallEnd) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
  }
  const used = process.cpuUsage(start);
  return (ops * 1e6) / (used.user + used.system);
}

export interface Rates {
  /** Ops per second of wall clock. */
  perS: number;
  /** Ops per second of this process's CPU time. */
  perCpuS: number;
}

/**
 * Rates of several operations measured side by side: `rounds` rounds, each giving every
 * operation a slice of `ms / rounds` in turn, summed per operation. A machine whose speed
 * drifts within the run (a shared host) then slows every operation alike, so their ratios hold
 * where back-to-back phases would each catch a different moment.
 */
export function interleavedRates<K extends string>(fns: Record<K, () => unknown>, ms: number, rounds = 10, batch = 16): Record<K, Rates> {
  const names = Object.keys(fns) as K[];
  const totals = new Map(names.map((n) => [n, { ops: 0, wallMs: 0, cpuUs: 0 }]));
  for (const name of names) for (let i = 0; i < 200; i++) fns[name]();
  for (let round = 0; round < rounds; round++) {
    for (const name of names) {
      const fn = fns[name];
      const t = totals.get(name)!;
      const cpu0 = process.cpuUsage();
      const start = performance.now();
      let now = start;
      while (now - start < ms / rounds) {
        for (let i = 0; i < batch; i++) fn();
        t.ops += batch;
        now = performance.now();
      }
      const cpu = process.cpuUsage(cpu0);
      t.wallMs += now - start;
      t.cpuUs += cpu.user + cpu.system;
    }
  }
  const out = {} as Record<K, Rates>;
  for (const [name, t] of totals) out[name] = { perS: (t.ops * 1000) / t.wallMs, perCpuS: (t.ops * 1e6) / t.cpuUs };
  return out;
}

/** Async variant: awaits each call. */
export async function opsPerSecondAsync(fn: () => Promise<unknown>, ms = 500): Promise<number> {
  const warmEnd = performance.now() + Math.min(200, ms / 4);
  while (performance.now() < warmEnd) await fn();
  let ops = 0;
  const start = performance.now();
  while (performance.now() - start < ms) {
    await fn();
    ops++;
  }
  return (ops * 1000) / (performance.now() - start);
}

/** Percentile (0..100) of a list of samples, nearest-rank. */
export function percentile(samples: number[], p: number): number {
  if (samples.length === 0) return NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}

export function target(value: number, op: '>=' | '<=', limit: number) {
  return { value: limit, op, met: op === '>=' ? value >= limit : value <= limit };
}

export function writeResult(name: string, result: Omit<BenchResult, 'env' | 'name'>): BenchResult {
  const full: BenchResult = { name, ...result, env: environment() };
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, `${name}.json`), JSON.stringify(full, null, 2) + '\n');
  return full;
}

const fmt = (n: number) =>
  Math.abs(n) >= 1000 ? Math.round(n).toLocaleString('en-US') : Number(n.toPrecision(4)).toString();

export function printTable(result: BenchResult): void {
  const rows: [string, string, string, string][] = [['metric', 'value', 'baseline', 'ratio']];
  for (const [k, v] of Object.entries(result.metrics)) {
    const base = result.baseline[k];
    const ratio = result.ratios[k];
    rows.push([k, fmt(v), base === undefined ? '' : fmt(base), ratio === undefined ? '' : `${fmt(ratio)}x`]);
  }
  for (const [k, r] of Object.entries(result.ratios)) {
    if (!(k in result.metrics)) rows.push([k, '', '', `${fmt(r)}x`]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const r of rows) console.log(r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  '));
  for (const [k, t] of Object.entries(result.targets ?? {})) {
    console.log(`target ${k} ${t.op} ${fmt(t.value)}: ${t.met ? 'met' : 'NOT MET'}`);
  }
  for (const n of result.notes ?? []) console.log(`note: ${n}`);
}
