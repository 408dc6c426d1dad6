import { createHash } from 'node:crypto';
import type { TalosConfig } from '../config/config.ts';
import type { DriftReport } from '../mcp/pinning.ts';
import { canonicalJson } from '../mcp/pinning.ts';

/**
 * Drift detection (contracts/SPEC.md section 10, "Drift"): the TGA compares what runs with what is
 * declared and, per kind of difference, reports it or reconciles it. Pure: the running and the
 * declared configuration, and the upstreams' pin reports, are handed in; the effects of a
 * reconciliation (swapping trusted issuers, limits, restarting an upstream, re-pinning a tool)
 * are the TGA's, in actors/tga.
 *
 * Sections of the configuration compared one by one (a finding names the section):
 *   gateway, trustedIssuers, limits, breaker, redis, audit, pins, upstreams.<name>
 */
export type DriftKind = 'config' | 'tool';
/** What the TGA does about one kind of difference. */
export type DriftMode = 'report' | 'reconcile';
export interface DriftPolicy {
  config: DriftMode;
  tools: DriftMode;
}
/** Report only: a declared change is applied by an operator, a changed tool stays withheld. */
export const DEFAULT_DRIFT_POLICY: DriftPolicy = { config: 'report', tools: 'report' };
/** Default time between two drift checks. */
export const DEFAULT_DRIFT_INTERVAL_MS = 60_000;
/** Shortest interval accepted (a check re-lists every upstream's tools). */
export const MIN_DRIFT_INTERVAL_MS = 100;
/** Findings kept from one check at most (a flood of drifted tools is summarised by the first ones). */
export const MAX_DRIFT_FINDINGS = 256;

/**
 * `reported`: left as it is (and refused where it matters: a drifted tool is withheld);
 * `reconciled`: the running system now matches the declaration;
 * `restart_required`: cannot change while running (listen address, stores, Redis).
 */
export type DriftAction = 'reported' | 'reconciled' | 'restart_required';

export interface DriftFinding {
  kind: DriftKind;
  /** Config section (`limits`, `upstreams.memory`) or `upstream/tool` for a tool. */
  subject: string;
  /** Short digests (16 hex) of the running and the declared value; absent when missing on that side. */
  running?: string;
  declared?: string;
  action: DriftAction;
}

/** Sections a running TGA can bring in line with the declaration without a restart. */
export const RECONCILABLE_SECTIONS: ReadonlySet<string> = new Set(['trustedIssuers', 'limits']);

function digestOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value ?? null)).digest('hex');
}

/** The configuration's digest: SHA-256 (hex) of its canonical JSON, environment report excluded. */
export function configDigest(config: TalosConfig): string {
  return digestOf(comparable(config));
}

function comparable(config: TalosConfig): Record<string, unknown> {
  const { overrides: _overrides, ...rest } = config;
  return rest as unknown as Record<string, unknown>;
}

/** The configuration split into the sections compared one by one. */
export function configSections(config: TalosConfig): Record<string, unknown> {
  const sections: Record<string, unknown> = {
    gateway: config.gateway,
    trustedIssuers: [...config.trustedIssuers].sort(),
    limits: config.limits,
    breaker: config.breaker,
    redis: config.redis ?? null,
    audit: config.audit,
    pins: config.pinsFile ?? null,
  };
  for (const u of config.upstreams) sections[`upstreams.${u.name}`] = u;
  return sections;
}

/** Differences between the running and the declared configuration, by section (sorted). */
export function diffConfig(running: TalosConfig, declared: TalosConfig): Array<{ subject: string; running?: string; declared?: string }> {
  const a = configSections(running);
  const b = configSections(declared);
  const subjects = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const out: Array<{ subject: string; running?: string; declared?: string }> = [];
  for (const s of subjects) {
    const ra = Object.hasOwn(a, s) ? digestOf(a[s]).slice(0, 16) : undefined;
    const rb = Object.hasOwn(b, s) ? digestOf(b[s]).slice(0, 16) : undefined;
    if (ra === rb) continue;
    out.push({ subject: s, ...(ra ? { running: ra } : {}), ...(rb ? { declared: rb } : {}) });
  }
  return out;
}

/**
 * Classifies every difference under the policy: which to reconcile, which to report.
 * `toolDrift` are the upstreams' pin reports (a listed definition whose hash is not the pinned one).
 */
export function planDrift(
  configDiffs: ReadonlyArray<{ subject: string; running?: string; declared?: string }>,
  toolDrift: readonly DriftReport[],
  policy: DriftPolicy,
): DriftFinding[] {
  const findings: DriftFinding[] = [];
  for (const d of configDiffs) {
    const action: DriftAction = RECONCILABLE_SECTIONS.has(d.subject)
      ? policy.config === 'reconcile'
        ? 'reconciled'
        : 'reported'
      : d.subject.startsWith('upstreams.')
        ? policy.config === 'reconcile'
          ? 'reconciled'
          : 'reported'
        : 'restart_required';
    findings.push({ kind: 'config', ...d, action });
  }
  for (const t of toolDrift) {
    findings.push({
      kind: 'tool',
      subject: `${t.upstream}/${t.tool}`,
      running: t.seen.slice(0, 16),
      declared: t.pinned.slice(0, 16),
      action: policy.tools === 'reconcile' ? 'reconciled' : 'reported',
    });
  }
  return findings.slice(0, MAX_DRIFT_FINDINGS);
}
