import type { Json } from '../encoding/json.ts';
import { compileGlob, globContains, matchPath, type CompiledGlob, type Containment } from './glob.ts';

/**
 * Grants and argument constraints (PROTOCOL.md section 7). A grant is
 * `{ method, tool?, args? }`; a missing tool or `"*"` covers every tool of the method; an
 * argument that `args` does not name is unconstrained. A NAMED argument that the request
 * leaves out is a violation (no constraint is satisfied by absence).
 */
export type Constraint = { eq: Json } | { in: Json[] } | { glob: string } | { max: number };

export interface Grant {
  method: string;
  tool?: string;
  args?: Record<string, Constraint>;
}

export const MAX_GRANTS = 64;
export const MAX_ARGS_PER_GRANT = 32;
export const MAX_IN_VALUES = 64;
export const MAX_NAME_LENGTH = 256;
/** Nesting of a JSON value inside `eq` / `in`. */
export const MAX_VALUE_DEPTH = 8;
export const ANY_TOOL = '*';

/** Checks one grant's shape; returns a problem description or null. */
export function grantProblem(g: unknown): string | null {
  if (!isPlainObject(g)) return 'a grant must be an object';
  for (const k of Object.keys(g)) if (k !== 'method' && k !== 'tool' && k !== 'args') return `unknown grant field ${JSON.stringify(k)}`;
  if (!isName(g.method)) return 'grant.method must be a non-empty string';
  if ('tool' in g && !isName(g.tool)) return 'grant.tool must be a non-empty string';
  if ('args' in g) {
    const args = g.args;
    if (!isPlainObject(args)) return 'grant.args must be an object';
    const names = Object.keys(args);
    if (names.length > MAX_ARGS_PER_GRANT) return `a grant constrains at most ${MAX_ARGS_PER_GRANT} arguments`;
    for (const name of names) {
      if (name.length === 0 || name.length > MAX_NAME_LENGTH) return 'argument names are 1..256 characters';
      const p = constraintProblem(args[name]);
      if (p) return `argument ${JSON.stringify(name)}: ${p}`;
    }
  }
  return null;
}

function constraintProblem(c: unknown): string | null {
  if (!isPlainObject(c)) return 'a constraint must be an object';
  const keys = Object.keys(c);
  if (keys.length !== 1) return 'a constraint has exactly one of eq, in, glob, max';
  const v = c[keys[0]!];
  switch (keys[0]) {
    case 'eq':
      return isJsonValue(v, 0) ? null : 'eq takes a JSON value (safe integers only)';
    case 'in':
      if (!Array.isArray(v) || v.length === 0 || v.length > MAX_IN_VALUES) return `in takes 1..${MAX_IN_VALUES} values`;
      return v.every((x) => isJsonValue(x, 0)) ? null : 'in takes JSON values (safe integers only)';
    case 'glob': {
      const g = compileGlob(v);
      return typeof g === 'string' ? g : null;
    }
    case 'max':
      return Number.isSafeInteger(v) ? null : 'max takes a safe integer';
    default:
      return `unknown constraint ${JSON.stringify(keys[0])}`;
  }
}

function isName(v: unknown): v is string {
  return typeof v === 'string' && v.length > 0 && v.length <= MAX_NAME_LENGTH;
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function isJsonValue(v: unknown, depth: number): boolean {
  if (depth > MAX_VALUE_DEPTH) return false;
  if (v === null || typeof v === 'string' || typeof v === 'boolean') return true;
  if (typeof v === 'number') return Number.isSafeInteger(v);
  if (Array.isArray(v)) return v.every((x) => isJsonValue(x, depth + 1));
  if (isPlainObject(v)) return Object.values(v).every((x) => isJsonValue(x, depth + 1));
  return false;
}

/** JSON equality: numbers by value, `true` is not `1`, object key order irrelevant. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Precompiled matchers: built once per verified token, used on every request.

export type ValueTest = (value: unknown) => boolean;

export function compileConstraint(c: Constraint): ValueTest {
  if ('eq' in c) {
    const want = c.eq;
    if (want === null || typeof want !== 'object') return (v) => v === want;
    return (v) => jsonEqual(v, want);
  }
  if ('in' in c) {
    const list = c.in;
    if (list.every((x) => x === null || typeof x !== 'object')) {
      // Set.has is SameValueZero: 1 and true stay distinct, as JSON equality requires.
      const set = new Set<unknown>(list);
      return (v) => set.has(v);
    }
    return (v) => list.some((x) => jsonEqual(v, x));
  }
  if ('glob' in c) {
    const g = compileGlob(c.glob) as CompiledGlob;
    return (v) => matchPath(g, v);
  }
  const max = c.max;
  return (v) => typeof v === 'number' && v <= max;
}

export interface CompiledGrant {
  grant: Grant;
  /** index of the grant in its token */
  position: number;
  method: string;
  /** null: any tool */
  tool: string | null;
  argNames: string[];
  argTests: ValueTest[];
}

export function compileGrant(grant: Grant, position: number): CompiledGrant {
  const names = grant.args ? Object.keys(grant.args) : [];
  return {
    grant,
    position,
    method: grant.method,
    tool: grant.tool === undefined || grant.tool === ANY_TOOL ? null : grant.tool,
    argNames: names,
    argTests: names.map((n) => compileConstraint(grant.args![n]!)),
  };
}

export interface AccessRequest {
  method: string;
  tool?: string;
  args?: Record<string, unknown>;
}

/** Grants indexed by method, then tool; wildcard-tool grants are appended to every tool list. */
export interface GrantIndex {
  byMethod: Map<string, { byTool: Map<string, CompiledGrant[]>; anyTool: CompiledGrant[] }>;
}

export function indexGrants(grants: Grant[]): GrantIndex {
  const byMethod: GrantIndex['byMethod'] = new Map();
  const compiled = grants.map((g, i) => compileGrant(g, i));
  for (const cg of compiled) {
    if (!byMethod.has(cg.method)) byMethod.set(cg.method, { byTool: new Map(), anyTool: [] });
  }
  for (const [method, entry] of byMethod) {
    const ofMethod = compiled.filter((cg) => cg.method === method);
    entry.anyTool = ofMethod.filter((cg) => cg.tool === null);
    for (const cg of ofMethod) {
      if (cg.tool !== null && !entry.byTool.has(cg.tool)) {
        const tool = cg.tool;
        // Grant order is kept so the first applicable grant is reported deterministically.
        entry.byTool.set(tool, ofMethod.filter((x) => x.tool === null || x.tool === tool));
      }
    }
  }
  return { byMethod };
}

/** The position of the granting grant, null (no grant covers method and tool), or the name of the violated argument. */
export type MatchResult = number | null | string;

const EMPTY_ARGS: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;

/**
 * The first grant (in token order) that covers the method and tool and whose every named
 * argument passes wins. When grants cover the method and tool but all fail on arguments, the
 * refusal names the first failing argument of the first such grant.
 */
export function matchRequest(index: GrantIndex, req: AccessRequest): MatchResult {
  const entry = index.byMethod.get(req.method);
  if (entry === undefined) return null;
  const candidates = req.tool === undefined ? entry.anyTool : (entry.byTool.get(req.tool) ?? entry.anyTool);
  if (candidates.length === 0) return null;
  const args = req.args ?? EMPTY_ARGS;
  let firstBad: string | undefined;
  for (let i = 0; i < candidates.length; i++) {
    const cg = candidates[i]!;
    const names = cg.argNames;
    const tests = cg.argTests;
    let bad: string | undefined;
    for (let j = 0; j < names.length; j++) {
      const name = names[j]!;
      const value = Object.prototype.hasOwnProperty.call(args, name) ? args[name] : undefined;
      if (value === undefined || !tests[j]!(value)) {
        bad = name;
        break;
      }
    }
    if (bad === undefined) return cg.position;
    if (firstBad === undefined) firstBad = bad;
  }
  return firstBad!;
}

// ---------------------------------------------------------------------------------------------
// Containment (attenuation): is every request the child constraint allows also allowed by the
// parent's? Decided exactly; only glob-in-glob can be undecided (see glob.ts).

export function constraintContains(parent: Constraint, child: Constraint): Containment {
  const pTest = compileConstraint(parent);
  // A finite child set (eq / in) is inside exactly when each of its values passes the parent.
  if ('eq' in child) return pTest(child.eq) ? 'inside' : 'outside';
  if ('in' in child) return child.in.every((v) => pTest(v)) ? 'inside' : 'outside';
  if ('glob' in child) {
    // A glob allows infinitely many raw strings ("a", "./a", "a/"…) and no non-strings.
    if ('glob' in parent) return globContains(compileGlob(parent.glob) as CompiledGlob, compileGlob(child.glob) as CompiledGlob);
    return 'outside';
  }
  // child.max allows infinitely many numbers and nothing else.
  if ('max' in parent) return child.max <= parent.max ? 'inside' : 'outside';
  return 'outside';
}

export function grantContains(parent: Grant, child: Grant): Containment {
  if (parent.method !== child.method) return 'outside';
  const pTool = parent.tool === undefined || parent.tool === ANY_TOOL ? null : parent.tool;
  const cTool = child.tool === undefined || child.tool === ANY_TOOL ? null : child.tool;
  if (pTool !== null && cTool !== pTool) return 'outside';
  let unknown = false;
  for (const [name, pc] of Object.entries(parent.args ?? {})) {
    const cc = child.args?.[name];
    if (cc === undefined) return 'outside'; // the child lifts a constraint
    const v = constraintContains(pc, cc);
    if (v === 'outside') return 'outside';
    if (v === 'unknown') unknown = true;
  }
  return unknown ? 'unknown' : 'inside';
}

/**
 * Every child grant must be inside some parent grant. Returns null when attenuated, else the
 * refusal code and the index of the first child grant that is not: `grant_unknown` when some
 * parent grant could not be decided for it, `grant_escalation` when all were decided outside.
 */
export function grantsAttenuate(
  parent: Grant[],
  child: Grant[],
): null | { code: 'grant_escalation' | 'grant_unknown'; index: number } {
  for (let i = 0; i < child.length; i++) {
    let unknown = false;
    let inside = false;
    for (const pg of parent) {
      const v = grantContains(pg, child[i]!);
      if (v === 'inside') {
        inside = true;
        break;
      }
      if (v === 'unknown') unknown = true;
    }
    if (!inside) return { code: unknown ? 'grant_unknown' : 'grant_escalation', index: i };
  }
  return null;
}
