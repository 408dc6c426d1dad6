import { canonicalizePath } from './path.ts';

/**
 * Globs over canonical paths (PROTOCOL.md section 7): a glob is itself a canonical path in
 * which `*` matches any run of characters inside one segment (dot-files included) and `**`,
 * only as a whole segment, matches zero or more segments. No other character is special.
 *
 * Matching is linear-time in practice and never backtracks exponentially: segments are
 * matched by the classic greedy wildcard algorithm (a later `**` subsumes an earlier one), and
 * inside a segment `*` runs are matched the same way at the character level.
 */

export const MAX_GLOB_LENGTH = 1024;
/** More `**` segments add nothing a user needs and only cost matching time. */
export const MAX_GLOBSTARS = 4;

export const enum SegKind {
  Literal = 0,
  /** exactly `*`: any one segment */
  Star = 1,
  /** a segment with `*` inside, split on `*` into literal parts */
  Wild = 2,
  /** `**`: zero or more segments */
  Globstar = 3,
}

export interface SegPattern {
  kind: SegKind;
  /** the segment text as written */
  text: string;
  /** Wild only: the literal parts between stars (first is the prefix, last the suffix) */
  parts: string[];
}

export interface CompiledGlob {
  source: string;
  absolute: boolean;
  segs: SegPattern[];
  globstars: number;
  /** true when no segment holds `*`: the glob matches exactly one canonical path */
  literal: boolean;
  /**
   * For the commonest grant, `Q/**` with Q literal and not empty: Q as written. The glob then
   * matches Q itself and whatever starts with `Q/` (a canonical path has no empty segment).
   */
  under: string | null;
}

export type GlobProblem = string;

/** Compiled globs are immutable and tokens repeat the same few: compile each once. */
export const GLOB_CACHE_SIZE = 4096;
const compiled = new Map<string, CompiledGlob | GlobProblem>();

/** Compiles a glob, or returns why it is refused (not canonical, `**` inside a segment, limits). */
export function compileGlob(glob: unknown): CompiledGlob | GlobProblem {
  if (typeof glob !== 'string') return 'a glob must be a string';
  let c = compiled.get(glob);
  if (c === undefined) {
    c = compileUncached(glob);
    if (compiled.size >= GLOB_CACHE_SIZE) compiled.clear(); // crude bound: a refill is cheap
    compiled.set(glob, c);
  }
  return c;
}

function compileUncached(glob: string): CompiledGlob | GlobProblem {
  if (glob.length > MAX_GLOB_LENGTH) return `a glob is at most ${MAX_GLOB_LENGTH} characters`;
  if (canonicalizePath(glob) !== glob) return 'a glob must be a canonical path (no empty, `.` or `..` segments, no trailing `/`, no NUL or backslash)';
  const absolute = glob.charCodeAt(0) === 0x2f;
  const body = glob === '.' || glob === '/' ? '' : absolute ? glob.slice(1) : glob;
  const segs: SegPattern[] = [];
  let globstars = 0;
  if (body !== '') {
    for (const text of body.split('/')) {
      if (text === '**') {
        globstars++;
        segs.push({ kind: SegKind.Globstar, text, parts: [] });
      } else if (text.includes('**')) {
        return '`**` is only allowed as a whole segment';
      } else if (text === '*') {
        segs.push({ kind: SegKind.Star, text, parts: [] });
      } else if (text.includes('*')) {
        segs.push({ kind: SegKind.Wild, text, parts: text.split('*') });
      } else {
        segs.push({ kind: SegKind.Literal, text, parts: [] });
      }
    }
  }
  if (globstars > MAX_GLOBSTARS) return `a glob holds at most ${MAX_GLOBSTARS} \`**\` segments`;
  const literal = segs.every((s) => s.kind === SegKind.Literal);
  const literalThenGlobstar = globstars === 1 && segs.length > 1 && segs.at(-1)!.kind === SegKind.Globstar && segs.slice(0, -1).every((s) => s.kind === SegKind.Literal);
  const under = literalThenGlobstar ? glob.slice(0, -'/**'.length) : null;
  return Object.freeze({ source: glob, absolute, segs: Object.freeze(segs) as SegPattern[], globstars, literal, under });
}

/** Does segment pattern `p` match the path segment path[start, end)? */
function matchSegment(p: SegPattern, path: string, start: number, end: number): boolean {
  switch (p.kind) {
    case SegKind.Star:
      return true; // canonical segments are never empty
    case SegKind.Literal:
      return end - start === p.text.length && path.startsWith(p.text, start);
    case SegKind.Wild: {
      const parts = p.parts;
      const last = parts.length - 1;
      const prefix = parts[0]!;
      const suffix = parts[last]!;
      if (end - start < prefix.length + suffix.length) return false;
      if (!path.startsWith(prefix, start)) return false;
      const suffixStart = end - suffix.length;
      if (!path.startsWith(suffix, suffixStart)) return false;
      // Middle parts, leftmost-first, between the prefix and the suffix.
      let pos = start + prefix.length;
      for (let i = 1; i < last; i++) {
        const part = parts[i]!;
        if (part === '') continue;
        const at = path.indexOf(part, pos);
        if (at < 0 || at + part.length > suffixStart) return false;
        pos = at + part.length;
      }
      return true;
    }
    default:
      return false;
  }
}

/** Matches a CANONICAL path against a compiled glob. Allocation-free. */
export function matchCanonical(g: CompiledGlob, path: string): boolean {
  const absolute = path.charCodeAt(0) === 0x2f;
  if (absolute !== g.absolute) return false;
  if (g.literal) return path === g.source;
  if (g.under !== null) {
    const q = g.under;
    return path.startsWith(q) && (path.length === q.length || path.charCodeAt(q.length) === 0x2f);
  }
  const end = path.length;
  // The region holding the segments: "." and "/" have none.
  let p = absolute ? 1 : path === '.' ? end : 0;
  const segs = g.segs;
  const m = segs.length;
  let gi = 0;
  let starGi = -1;
  let starP = 0;
  while (p < end) {
    let segEnd = path.indexOf('/', p);
    if (segEnd < 0) segEnd = end;
    if (gi < m) {
      const pat = segs[gi]!;
      if (pat.kind === SegKind.Globstar) {
        starGi = gi;
        starP = p;
        gi++;
        continue;
      }
      if (matchSegment(pat, path, p, segEnd)) {
        gi++;
        p = segEnd + 1;
        continue;
      }
    }
    if (starGi < 0) return false;
    // Let the last `**` absorb one more segment and retry from there.
    const next = path.indexOf('/', starP);
    starP = next < 0 ? end : next + 1;
    p = starP;
    gi = starGi + 1;
  }
  while (gi < m && segs[gi]!.kind === SegKind.Globstar) gi++;
  return gi === m;
}

/** Canonicalizes `value` (when it is a string) and matches it; refused paths match nothing. */
export function matchPath(g: CompiledGlob, value: unknown): boolean {
  if (typeof value !== 'string') return false;
  const canonical = canonicalizePath(value);
  return canonical !== null && matchCanonical(g, canonical);
}

/** Containment verdict: the child set is inside the parent set, is not, or we do not decide. */
export type Containment = 'inside' | 'outside' | 'unknown';

/** Is child segment pattern `c` inside parent segment pattern `p` (neither is `**`)? */
function segmentInside(c: SegPattern, p: SegPattern): Containment {
  if (c.kind === SegKind.Literal) return matchSegment(p, c.text, 0, c.text.length) ? 'inside' : 'outside';
  // c is a wildcard segment (`*` or `a*b`): it matches infinitely many segments.
  if (p.kind === SegKind.Star || p.text === c.text) return 'inside';
  if (p.kind === SegKind.Literal) return 'outside';
  return 'unknown';
}

/** Combines per-segment verdicts: any decided `outside` wins (segment sets are never empty). */
function combine(verdicts: Containment[]): Containment {
  if (verdicts.includes('outside')) return 'outside';
  if (verdicts.includes('unknown')) return 'unknown';
  return 'inside';
}

/**
 * Glob containment, decided exactly for the cases PROTOCOL.md section 7 lists:
 *  1. identical globs: inside;
 *  2. absolute vs relative (either way): outside (they match disjoint sets);
 *  3. parent without `**`: a child with `**` is outside (it matches paths of several lengths);
 *     otherwise same segment count (else outside), then segment by segment;
 *  4. parent `Q/**` whose only `**` is last: the child's first |Q| segments must not hold `**`
 *     (else unknown); a child with fewer segments is outside; the first |Q| segments are
 *     compared segment by segment, the rest is free;
 *  everything else is unknown.
 * Segment by segment: a literal child segment is inside when the parent segment matches it;
 * a wildcard child segment is inside `*` or an equal segment, outside a literal one, and
 * unknown against any other wildcard segment.
 */
export function globContains(parent: CompiledGlob, child: CompiledGlob): Containment {
  if (parent.source === child.source) return 'inside';
  if (parent.absolute !== child.absolute) return 'outside';
  const ps = parent.segs;
  const cs = child.segs;
  if (parent.globstars === 0) {
    if (child.globstars > 0) return 'outside';
    if (cs.length !== ps.length) return 'outside';
    return combine(cs.map((c, i) => segmentInside(c, ps[i]!)));
  }
  if (parent.globstars === 1 && ps[ps.length - 1]!.kind === SegKind.Globstar) {
    const q = ps.length - 1;
    const head = cs.slice(0, q);
    if (head.some((c) => c.kind === SegKind.Globstar)) return 'unknown';
    if (cs.length < q) return 'outside';
    return combine(head.map((c, i) => segmentInside(c, ps[i]!)));
  }
  return 'unknown';
}
