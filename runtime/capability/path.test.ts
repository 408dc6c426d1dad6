import t from 'tap';
import fc from 'fast-check';
import { posix } from 'node:path';
import { canonicalizePath, MAX_PATH_LENGTH } from './path.ts';

t.test('canonical forms, exactly as PROTOCOL.md section 7', async (t) => {
  const cases: [string, string | null][] = [
    ['a/b', 'a/b'],
    ['a//b/', 'a/b'],
    ['./a/./b/.', 'a/b'],
    ['a/b/../c', 'a/c'],
    ['a/..', '.'],
    ['.', '.'],
    ['./', '.'],
    ['/', '/'],
    ['//', '/'],
    ['/a/../b', '/b'],
    ['/a/..', '/'],
    ['..', null],
    ['a/../..', null],
    ['/..', null],
    ['/../a', null],
    ['', null],
    ['a\0b', null],
    ['a\\b', null],
    ['A/É/e\u0301', 'A/É/e\u0301'], // no case folding, no Unicode normalization
    ['...', '...'], // only `.` and `..` are special
    ['.hidden/x', '.hidden/x'],
    ['*/**', '*/**'],
    // What a URL parser resolves differently from the text is refused (SPEC 7.3).
    ['src/%2e%2e/etc', null],
    ['src/.%2E/etc', null],
    ['src/%2E./etc', null],
    ['src/%2e/x', null],
    ['/repo/src/%2e%2e', null],
    ['src/.\t./etc', null],
    ['src/x\n', null],
    ['src/\rx', null],
    ['src/%2e%2e%2e/x', 'src/%2e%2e%2e/x'], // three dots: a plain segment, for URL parsers too
    ['src/a%2eb/x', 'src/a%2eb/x'],
    ['src/my%20file.txt', 'src/my%20file.txt'], // other escapes are plain text
  ];
  for (const [input, want] of cases) t.equal(canonicalizePath(input), want, JSON.stringify(input));
  t.equal(canonicalizePath('a'.repeat(MAX_PATH_LENGTH)), 'a'.repeat(MAX_PATH_LENGTH));
  t.equal(canonicalizePath('a'.repeat(MAX_PATH_LENGTH + 1)), null, 'over-long paths are refused');
});

const segment = fc.constantFrom('a', 'b', 'src', '.', '..', '', '.git', '*', 'é', 'a\\b', 'x\0');
const rawPath = fc
  .tuple(fc.boolean(), fc.array(segment, { maxLength: 8 }))
  .map(([abs, segs]) => (abs ? '/' : '') + segs.join('/'));

/** Independent oracle: POSIX resolution with a stack, where popping an empty stack escapes. */
function reference(p: string): string | null {
  if (p === '' || p.includes('\0') || p.includes('\\')) return null;
  const stack: string[] = [];
  for (const s of p.split('/')) {
    if (s === '' || s === '.') continue;
    if (s === '..') {
      if (stack.length === 0) return null;
      stack.pop();
    } else stack.push(s);
  }
  const abs = p.startsWith('/');
  if (abs) return '/' + stack.join('/');
  return stack.length ? stack.join('/') : '.';
}

t.test('property: canonicalization is idempotent and agrees with an independent resolver', async (t) => {
  fc.assert(
    fc.property(rawPath, (p) => {
      const c = canonicalizePath(p);
      if (c !== reference(p)) return false;
      if (c === null) return true;
      // Also agrees with node's own posix normalizer whenever the path does not escape.
      const n = posix.normalize(p).replace(/(.)\/$/, '$1');
      return canonicalizePath(c) === c && c === n;
    }),
    { numRuns: 10_000 },
  );
  t.pass('10,000 runs');
});
