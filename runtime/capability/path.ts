/**
 * Path canonicalization for argument matching (PROTOCOL.md section 7), exactly:
 * refuse the empty string, NUL and backslash; split on `/`; drop empty and `.` segments;
 * `..` removes the previous segment and is refused when there is none; keep one leading `/`
 * for an absolute path; no trailing `/`; the empty relative path is `.`. No Unicode
 * normalization, no case folding. A refused path matches nothing.
 */

/** Longer argument strings are refused as paths (they match no glob). */
export const MAX_PATH_LENGTH = 4096;

const SLASH = 0x2f;
const DOT = 0x2e;
const NUL = 0x00;
const BACKSLASH = 0x5c;

/**
 * The canonical form of `path`, or `null` when it is refused. Already-canonical input (the
 * common case on the request path) is returned as is, without allocating.
 */
export function canonicalizePath(path: string): string | null {
  const n = path.length;
  if (n === 0 || n > MAX_PATH_LENGTH) return null;
  // One scan: refuse NUL/backslash, and notice whether any rewriting is needed.
  let needsRewrite = false;
  let segStart = path.charCodeAt(0) === SLASH ? 1 : 0;
  if (n === 1 && segStart === 1) return path; // "/"
  for (let i = segStart; i <= n; i++) {
    const c = i < n ? path.charCodeAt(i) : SLASH;
    if (c === NUL || c === BACKSLASH) return null;
    if (c === SLASH) {
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
