import t from 'tap';
import fc from 'fast-check';
import { EncodingError } from '../errors.ts';
import { fromB64, fromB64u, toB64, toB64u } from './base64url.ts';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof EncodingError ? err.code : `not EncodingError: ${String(err)}`;
  }
  return undefined;
}

t.test('RFC 4648 section 10 test vectors, base64url without padding', async (t) => {
  const cases: [string, string][] = [
    ['', ''],
    ['f', 'Zg'],
    ['fo', 'Zm8'],
    ['foo', 'Zm9v'],
    ['foob', 'Zm9vYg'],
    ['fooba', 'Zm9vYmE'],
    ['foobar', 'Zm9vYmFy'],
  ];
  for (const [plain, encoded] of cases) {
    t.equal(toB64u(Buffer.from(plain)), encoded);
    t.same(fromB64u(encoded), new Uint8Array(Buffer.from(plain)));
  }
  t.equal(toB64u(new Uint8Array([0xfb, 0xff])), '-_8', 'url alphabet');
  t.same(fromB64u('-_8'), new Uint8Array([0xfb, 0xff]));
});

t.test('everything Buffer would accept but we refuse', async (t) => {
  t.equal(code(() => fromB64u('Zg==')), 'bad_base64url', 'padding');
  t.equal(code(() => fromB64u('Zm8=')), 'bad_base64url', 'single pad');
  t.equal(code(() => fromB64u('+/8')), 'bad_base64url', 'standard alphabet + and /');
  t.equal(code(() => fromB64u('Zm9v YmFy')), 'bad_base64url', 'inner space');
  t.equal(code(() => fromB64u('Zm9v\n')), 'bad_base64url', 'newline');
  t.equal(code(() => fromB64u(' Zm9v')), 'bad_base64url', 'leading space');
  t.equal(code(() => fromB64u('Zm9v\t')), 'bad_base64url', 'tab');
  t.equal(code(() => fromB64u('Zm9v!')), 'bad_base64url', 'garbage');
  t.equal(code(() => fromB64u('Zm9vé')), 'bad_base64url', 'non-ASCII');
  t.equal(code(() => fromB64u('Z')), 'bad_base64url', 'length 1 mod 4');
  t.equal(code(() => fromB64u('Zm9vY')), 'bad_base64url', 'length 5 = 1 mod 4');
  t.equal(code(() => fromB64u('Zh')), 'bad_base64url', "non-zero trailing bits ('Zg' is canonical)");
  t.equal(code(() => fromB64u('Zm9')), 'bad_base64url', "non-zero trailing bits ('Zm8' is canonical)");
  t.equal(code(() => fromB64u(42 as unknown as string)), 'bad_base64url', 'not a string');
  t.equal(code(() => fromB64u('Zm9v', 4)), 'bad_length', 'expected length');
  t.same(fromB64u('Zm9v', 3), new Uint8Array(Buffer.from('foo')));
  // Each of these decodes to the same bytes in Node: only the canonical one is ours.
  for (const lenient of ['Zg==', 'Zh', 'Zg=', ' Zg']) t.same(Buffer.from(lenient, 'base64url'), Buffer.from('f'));
});

t.test('round trip and uniqueness (property)', async (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      const text = toB64u(bytes);
      return /^[A-Za-z0-9_-]*$/.test(text) && Buffer.from(fromB64u(text, bytes.length)).equals(Buffer.from(bytes));
    }),
    { numRuns: 500 },
  );
  // Any string that decodes is the canonical encoding of what it decodes to.
  const b64uChars = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/= \n'.split(''));
  fc.assert(
    fc.property(fc.array(b64uChars, { maxLength: 20 }), (chars) => {
      const text = chars.join('');
      let decoded: Uint8Array;
      try {
        decoded = fromB64u(text);
      } catch (err) {
        return err instanceof EncodingError;
      }
      return toB64u(decoded) === text;
    }),
    { numRuns: 2000 },
  );
  t.pass('properties hold');
});

t.test('standard padded base64 (signed notes) is strict too', async (t) => {
  t.equal(toB64(Buffer.from('foob')), 'Zm9vYg==');
  t.same(fromB64('Zm9vYg=='), new Uint8Array(Buffer.from('foob')));
  t.same(fromB64(''), new Uint8Array(0));
  for (const bad of ['Zm9vYg', 'Zm9vYg=', 'Zm9vYh==', 'Zm9v\nYg==', '-_8=', 'Zm9vYg===']) {
    t.equal(code(() => fromB64(bad)), 'bad_base64', JSON.stringify(bad));
  }
  fc.assert(fc.property(fc.uint8Array({ maxLength: 100 }), (b) => Buffer.from(fromB64(toB64(b))).equals(Buffer.from(b))));
});
