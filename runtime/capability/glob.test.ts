import t from 'tap';
import fc from 'fast-check';
import { canonicalizePath } from './path.ts';
import { compileGlob, globContains, matchPath, MAX_GLOBSTARS, type CompiledGlob } from './glob.ts';

const g = (s: string): CompiledGlob => {
  const c = compileGlob(s);
  if (typeof c === 'string') throw new Error(`${s}: ${c}`);
  return c;
};

t.test('glob syntax: canonical paths only, `**` only as a whole segment', async (t) => {
  for (const ok of ['repo/src/**', '**', '*', '/etc/*.conf', '.', '/', 'a/*b*c/**/d', '.*/x']) {
    t.type(compileGlob(ok), 'object', ok);
  }
  for (const bad of ['', 'a/', './a', 'a/../b', 'a//b', 'a**', '**b/c', 'a\\b', 'a\0', '..', 7, null]) {
    t.type(compileGlob(bad), 'string', JSON.stringify(bad));
  }
  t.type(compileGlob(Array(MAX_GLOBSTARS + 1).fill('**').join('/')), 'string', 'too many **');
});

t.test('matching', async (t) => {
  const cases: [string, string, boolean][] = [
    ['repo/src/**', 'repo/src/a.ts', true],
    ['repo/src/**', 'repo/src', true], // ** matches zero segments
    ['repo/src/**', 'repo/src/x/y/z', true],
    ['repo/src/**', 'repo/srcx/a', false],
    ['repo/src/**', 'repo/src/../secret', false],
    ['repo/src/**', 'repo/src/../../etc/passwd', false],
    ['repo/src/**', './repo//src/./a', true],
    ['repo/src/**', '/repo/src/a', false], // absolute never matches relative
    ['/repo/**', 'repo/a', false],
    ['/repo/**', '/repo/a', true],
    ['*', '.env', true], // dot-files included
    ['*', 'a/b', false],
    ['*', '.', false],
    ['**', '.', true],
    ['**', 'a/b/c', true],
    ['**', '/a', false],
    ['.', '.', true],
    ['.', 'a/..', true],
    ['/', '/', true],
    ['/', '/a/..', true],
    ['a/*.ts', 'a/x.ts', true],
    ['a/*.ts', 'a/.ts', true],
    ['a/*.ts', 'a/x.tsx', false],
    ['a/x*y*z', 'a/xyz', true],
    ['a/x*y*z', 'a/xzyz', true],
    ['a/x*y*z', 'a/xzy', false],
    ['a/ab*ba', 'a/aba', false], // prefix and suffix may not overlap
    ['**/b/**/c', 'x/b/y/b/c', true],
    ['**/b/**/c', 'x/b/y/c/d', false],
    ['a/**/*.md', 'a/README.md', true],
    ['a/**/*.md', 'a/x/y/README.md', true],
    ['A/b', 'a/b', false], // no case folding
    ['é', 'e\u0301', false], // no Unicode normalization
    ['a\\*', 'a\\x', false], // backslash refused in paths
  ];
  for (const [glob, path, want] of cases) {
    if (compileGlob(glob) instanceof Object) t.equal(matchPath(g(glob), path), want, `${glob} ~ ${path}`);
    else t.equal(want, false, `${glob} is refused`);
  }
  t.equal(matchPath(g('**'), 7), false, 'non-strings never match');
  t.equal(matchPath(g('**'), ''), false, 'refused paths never match');
});

t.test('containment, the decided cases', async (t) => {
  const cases: [string, string, string][] = [
    // [parent, child, verdict]
    ['a/b/**', 'a/b/**', 'inside'],
    ['a/**/b', 'a/**/b', 'inside'], // identical, even when otherwise undecided
    ['a/b/**', 'a/b/c', 'inside'],
    ['a/b/**', 'a/b', 'inside'],
    ['a/b/**', 'a/b/c/**', 'inside'],
    ['a/b/**', 'a/*/c', 'outside'], // wildcard child segment vs literal parent segment
    ['a/b/**', 'a', 'outside'],
    ['a/b/**', 'a/c/**', 'outside'],
    ['a/b/**', '**', 'unknown'], // `**` within the first |Q| child segments
    ['a/b/**', 'a/**', 'unknown'],
    ['a/*/**', 'a/b*/x', 'inside'],
    ['a/x*/**', 'a/x*/y', 'inside'], // equal wildcard segment
    ['a/x*/**', 'a/xy*/y', 'unknown'], // wildcard inside a different wildcard: undecided
    ['a/x*/**', 'a/xy/y', 'inside'],
    ['a/x*/**', 'a/y/y', 'outside'],
    ['a/*', 'a/b', 'inside'],
    ['a/*', 'a/*.ts', 'inside'],
    ['a/*', 'a/**', 'outside'],
    ['a/*', 'a/b/c', 'outside'],
    ['a/*.ts', 'a/x.ts', 'inside'],
    ['a/*.ts', 'a/*.ts', 'inside'],
    ['a/*.ts', 'a/x*.ts', 'unknown'],
    ['a/b', 'a/*', 'outside'],
    ['**', 'anything/at/all', 'inside'],
    ['**', '**', 'inside'],
    ['**', '/abs', 'outside'],
    ['/a/**', 'a/b', 'outside'],
    ['**/x', 'a/x', 'unknown'], // parent `**` not last
    ['a/**/**', 'a/b', 'unknown'], // two `**`
  ];
  for (const [p, c, want] of cases) t.equal(globContains(g(p), g(c)), want, `${c} in ${p}`);
});

// ---- properties -----------------------------------------------------------------------------

const litSeg = fc.constantFrom('a', 'b', 'ab', '.x', 'é');
const globSeg = fc.oneof(litSeg, fc.constantFrom('*', '**', 'a*', '*b', 'a*b', '*a*'));
const globArb = fc
  .tuple(fc.boolean(), fc.array(globSeg, { maxLength: 5 }))
  .map(([abs, segs]) => (abs ? '/' : '') + (segs.length ? segs.join('/') : abs ? '' : '.'))
  .filter((s) => typeof compileGlob(s) === 'object');
const pathSeg = fc.constantFrom('a', 'b', 'ab', 'aab', 'ba', '.x', 'é', '.', '..', '');
const pathArb = fc
  .tuple(fc.boolean(), fc.array(pathSeg, { maxLength: 7 }))
  .map(([abs, segs]) => (abs ? '/' : '') + segs.join('/'));

/** Independent matcher: a regular expression over the segment list. */
function referenceMatch(glob: string, path: string): boolean {
  const canonical = canonicalizePath(path);
  if (canonical === null) return false;
  if (canonical.startsWith('/') !== glob.startsWith('/')) return false;
  const strip = (s: string) => (s === '.' || s === '/' ? '' : s.replace(/^\//, ''));
  const segs = strip(canonical) === '' ? [] : strip(canonical).split('/');
  const gsegs = strip(glob) === '' ? [] : strip(glob).split('/');
  const esc = (s: string) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  const re = gsegs
    .map((s) => (s === '**' ? '(?:/[^/]+)*' : '/' + s.split('*').map(esc).join('[^/]*')))
    .join('');
  return new RegExp(`^${re}$`).test(segs.map((s) => '/' + s).join(''));
}

t.test('property: matching agrees with an independent regular-expression matcher', async (t) => {
  fc.assert(
    fc.property(globArb, pathArb, (glob, path) => matchPath(g(glob), path) === referenceMatch(glob, path)),
    { numRuns: 10_000 },
  );
  t.pass('10,000 runs');
});

/** A path the glob surely matches: instantiate each wildcard, `**` with 0..2 segments. */
const instanceOf = (glob: string) =>
  fc
    .array(fc.tuple(fc.constantFrom('', 'a', 'b', '.x', 'zz'), fc.integer({ min: 0, max: 2 })), { minLength: 8, maxLength: 8 })
    .map((choices) => {
      const abs = glob.startsWith('/');
      const body = glob === '.' || glob === '/' ? '' : abs ? glob.slice(1) : glob;
      let k = 0;
      const out: string[] = [];
      for (const seg of body === '' ? [] : body.split('/')) {
        const [fill, count] = choices[k++ % choices.length]!;
        if (seg === '**') for (let i = 0; i < count; i++) out.push(fill || 'q');
        else out.push(seg.replaceAll('*', fill) || 'q');
      }
      return (abs ? '/' : '') + (out.length ? out.join('/') : abs ? '' : '.');
    });

/** A glob that narrows `glob` segment by segment (often, not always, inside it). */
const narrowed = (glob: string) =>
  fc.array(fc.integer({ min: 0, max: 5 }), { minLength: 8, maxLength: 8 }).map((picks) => {
    const abs = glob.startsWith('/');
    const body = glob === '.' || glob === '/' ? '' : abs ? glob.slice(1) : glob;
    const out: string[] = [];
    (body === '' ? [] : body.split('/')).forEach((seg, i) => {
      const k = picks[i % picks.length]!;
      const options =
        seg === '**' ? ['**', 'a', 'a/**', 'a/b', '*', ''] : seg.includes('*') ? [seg, 'a', 'ab', '*', seg.replace('*', 'x*'), 'b'] : [seg];
      const pick = options[k % options.length]!;
      if (pick !== '') out.push(pick);
    });
    return (abs ? '/' : '') + (out.length ? out.join('/') : abs ? '' : '.');
  });

t.test('property: `inside` is sound, and no path escaping the root matches', async (t) => {
  const related = globArb.chain((p) => fc.tuple(fc.constant(p), narrowed(p))).filter(([, c]) => typeof compileGlob(c) === 'object');
  const pair = fc.oneof(fc.tuple(globArb, globArb), related).chain(([p, c]) => fc.tuple(fc.constant(p), fc.constant(c), instanceOf(c), pathArb));
  let decidedInside = 0;
  fc.assert(
    fc.property(pair, ([p, c, inst, random]) => {
      const parent = g(p);
      const child = g(c);
      if (!matchPath(child, inst)) return false; // the generator is right
      if (globContains(parent, child) === 'inside') {
        decidedInside++;
        for (const path of [inst, random]) if (matchPath(child, path) && !matchPath(parent, path)) return false;
      }
      // A path that escapes its root never matches anything.
      const escaping = inst === '.' ? '..' : `${inst}/${'../'.repeat(inst.split('/').length + 1)}x`;
      return !matchPath(parent, escaping) && !matchPath(child, escaping);
    }),
    { numRuns: 10_000 },
  );
  t.ok(decidedInside > 500, `the property exercised ${decidedInside} decided containments`);
});

t.test('property: a path under a `Q/**` glob only matches when its canonical form stays under Q', async (t) => {
  const root = fc.array(litSeg, { minLength: 1, maxLength: 3 }).map((s) => s.join('/'));
  fc.assert(
    fc.property(root, pathArb, (q, tail) => {
      const path = `${q}/${tail}`;
      const canonical = canonicalizePath(path);
      const under = canonical !== null && (canonical === q || canonical.startsWith(q + '/'));
      return matchPath(g(`${q}/**`), path) === under;
    }),
    { numRuns: 10_000 },
  );
  t.pass('10,000 runs');
});
