/**
 * Path canonicalization for argument matching (PROTOCOL.md section 7), exactly:
 * refuse the empty string, NUL and backslash; split on `/`; drop empty and `.` segments;
 * `..` removes the previous segment and is refused when there is none; keep one leading `/`
 * for an absolute path; no trailing `/`; the empty relative path is `.`. No Unicode
 * normalization, no case folding, no percent-decoding. A refused path matches nothing.
 *
 * Also refused (SPEC 7.3, decided here): what a URL parser would resolve differently from the
 * text. The WHATWG parser (`new URL`, what most upstreams use on a `uri`) deletes tab, LF and
 * CR anywhere, and takes `%2e` for `.` in a dot segment, so `a/%2e%2e/b` or `a/.\t./b` would
 * pass a grant on `a/**` as plain segments and then climb out of it upstream.
 */

/** Longer argument strings are refused as paths (they match no glob). */
export const MAX_PATH_LENGTH = 4096;

const SLASH = 0x2f;
const DOT = 0x2e;
const NUL = 0x00;
const BACKSLASH = 0x5c;
const TAB = 0x09;
const LF = 0x0a;
const CR = 0x0d;
const PERCENT = 0x25;

/** `.` or `..` spelled with at least one `%2e` (either case): path[start, end). */
function isEncodedDotSegment(path: string, start: number, end: number): boolean {
  let dots = 0;
  let encoded = false;
  for (let i = start; i < end; ) {
    if (path.charCodeAt(i) === DOT) {
      i += 1;
    } else if (path.charCodeAt(i) === PERCENT && path.charCodeAt(i + 1) === 0x32 && (path.charCodeAt(i + 2) | 0x20) === 0x65) {
      encoded = true;
      i += 3;
    } else {
      return false;
    }
    dots++;
  }
  return encoded && dots <= 2;
}

/**
 * The canonical form of `path`, or `null` when it is refused. Already-canonical input (the
 * common case on the request path) is returned as is, without allocating.
 */
export function canonicalizePath(path: string): string | null {
  const n = path.length;
  if (n === 0 || n > MAX_PATH_LENGTH) return null;
  // One scan: refuse NUL, backslash, tab/LF/CR and encoded dot segments, and notice whether
  // any rewriting is needed.
  let needsRewrite = false;
  let segStart = path.charCodeAt(0) === SLASH ? 1 : 0;
  if (n === 1 && segStart === 1) return path; // "/"
  let sawPercent = false;
  for (let i = segStart; i <= n; i++) {
    const c = i < n ? path.charCodeAt(i) : SLASH;
    if (c === NUL || c === BACKSLASH || c === TAB || c === LF || c === CR) return null;
    if (c === PERCENT) sawPercent = true;
    if (c === SLASH) {
      if (sawPercent && isEncodedDotSegment(path, segStart, i)) return null;
      sawPercent = false;
      const len = i - segStart;
      if (
        len === 0 ||
        (len === 1 && path.charCodeAt(segStart) === DOT) ||
        (len === 2 && path.charCodeAt(segStart) === DOT && path.charCodeAt(segStart + 1) === DOT)
      ) {
        needsRewrite = true;
      }
      segStart = i + 1;
    }
  }
  if (!needsRewrite) return path;
  return rewrite(path);
}

function rewrite(path: string): string | null {
  const absolute = path.charCodeAt(0) === SLASH;
  const out: string[] = [];
  for (const seg of path.split('/')) {
    if (seg === '' || seg === '.') continue;
    if (seg === '..') {
      if (out.length === 0) return null; // would escape the root
      out.pop();
      continue;
    }
    out.push(seg);
  }
  if (absolute) return '/' + out.join('/');
  return out.length === 0 ? '.' : out.join('/');
}

export function isAbsolutePath(canonical: string): boolean {
  return canonical.charCodeAt(0) === SLASH;
}

/** The segments of a canonical path ("." and "/" have none). */
export function pathSegments(canonical: string): string[] {
  if (canonical === '.' || canonical === '/') return [];
  return (isAbsolutePath(canonical) ? canonical.slice(1) : canonical).split('/');
}
