import { CapabilityError } from './errors.ts';
import { grantProblem, type Constraint, type Grant } from './grant.ts';

/**
 * The compact, human way to write grants and durations (CLI and configuration):
 *   METHOD[:TOOL] [CONSTRAINT...]        e.g.  tools/call:read_text_file path=repo/src/**
 * where each CONSTRAINT is one of
 *   name=GLOB          { glob }   (paths are the common case, so `=` means glob)
 *   name==VALUE        { eq }     VALUE is JSON when it parses as JSON, else a string
 *   name~=V1,V2,...    { in }     each value as for `==`
 *   name<=N            { max }    N an integer
 * Durations: one or more NUMBER+UNIT groups, units s, m, h, d (e.g. 30m, 1h30m, 7d).
 */
export const MAX_DURATION_SECONDS = 366 * 86_400;

const CONSTRAINT = /^([^=<~\s]+)(==|~=|<=|=)(.*)$/s;

function jsonOrString(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function parseGrant(text: string): Grant {
  const parts = text.trim().split(/\s+/);
  const head = parts.shift() ?? '';
  if (head === '') throw new CapabilityError('bad_grant_syntax', 'a grant starts with METHOD or METHOD:TOOL');
  const colon = head.indexOf(':');
  const method = colon < 0 ? head : head.slice(0, colon);
  const tool = colon < 0 ? undefined : head.slice(colon + 1);
  const args: Record<string, Constraint> = {};
  for (const part of parts) {
    const m = CONSTRAINT.exec(part);
    if (!m) throw new CapabilityError('bad_grant_syntax', `cannot read constraint ${JSON.stringify(part)} (name=GLOB, name==VALUE, name~=A,B, name<=N)`);
    const [, name, op, rest] = m as unknown as [string, string, string, string];
    if (name in args) throw new CapabilityError('bad_grant_syntax', `argument ${JSON.stringify(name)} is constrained twice`);
    if (op === '=') args[name] = { glob: rest };
    else if (op === '==') args[name] = { eq: jsonOrString(rest) as never };
    else if (op === '~=') args[name] = { in: rest.split(',').map(jsonOrString) as never };
    else {
      if (!/^-?\d+$/.test(rest)) throw new CapabilityError('bad_grant_syntax', `max takes an integer, got ${JSON.stringify(rest)}`);
      args[name] = { max: Number(rest) };
    }
  }
  const grant: Grant = { method, ...(tool !== undefined ? { tool } : {}), ...(Object.keys(args).length ? { args } : {}) };
  const problem = grantProblem(grant);
  if (problem) throw new CapabilityError('bad_grant_syntax', problem);
  return grant;
}

/** The compact form of a grant (inverse of parseGrant for grants it can express). */
export function formatGrant(g: Grant): string {
  const head = g.tool === undefined ? g.method : `${g.method}:${g.tool}`;
  const cs = Object.entries(g.args ?? {}).map(([name, c]) => {
    if ('glob' in c) return `${name}=${c.glob}`;
    if ('eq' in c) return `${name}==${JSON.stringify(c.eq)}`;
    if ('in' in c) return `${name}~=${c.in.map((v) => JSON.stringify(v)).join(',')}`;
    return `${name}<=${c.max}`;
  });
  return [head, ...cs].join(' ');
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 };

export function parseDuration(text: string): number {
  if (!/^(\d+[smhd])+$/.test(text)) throw new CapabilityError('bad_duration', `cannot read duration ${JSON.stringify(text)} (e.g. 30m, 1h30m, 7d)`);
  let seconds = 0;
  for (const [, n, unit] of text.matchAll(/(\d+)([smhd])/g)) seconds += Number(n) * UNITS[unit!]!;
  if (seconds <= 0 || seconds > MAX_DURATION_SECONDS) throw new CapabilityError('bad_duration', `a duration is 1s..366d`);
  return seconds;
}
