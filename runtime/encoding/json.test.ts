import t from 'tap';
import fc from 'fast-check';
import { isDeepStrictEqual } from 'node:util';
import { EncodingError } from '../errors.ts';
import { MAX_JSON_DEPTH, parseJson } from './json.ts';

function refused(text: string, options = {}): boolean {
  try {
    parseJson(text, options);
  } catch (err) {
    return err instanceof EncodingError && err.code === 'bad_json';
  }
  return false;
}

t.test('duplicate keys are refused, including escaped spellings of the same key', async (t) => {
  t.ok(refused('{"a":1,"a":2}'));
  t.ok(refused('{"a":1,"\\u0061":2}'));
  t.ok(refused('{"x":{"a":1,"b":{},"a":1}}'), 'nested');
  t.ok(refused('[{"k":1,"k":1}]'), 'inside an array');
  t.same(parseJson('{"a":1,"A":2}'), { a: 1, A: 2 }, 'keys are case-sensitive');
  t.same(parseJson('[{"a":1},{"a":2}]'), [{ a: 1 }, { a: 2 }], 'same key in sibling objects');
});

t.test('integers: exact within ±(2^53 − 1), nothing else', async (t) => {
  t.equal(parseJson('9007199254740991'), 9007199254740991);
  t.equal(parseJson('-9007199254740991'), -9007199254740991);
  t.ok(refused('9007199254740992'));
  t.ok(refused('-9007199254740992'));
  t.ok(refused('12345678901234567890'));
  t.ok(refused('9007199254740992', { allowFloats: true }), 'an integer literal stays exact even when floats are allowed');
  t.ok(Object.is(parseJson('-0'), -0));
});

t.test('floats: refused unless allowed, then finite only', async (t) => {
  for (const f of ['1.5', '1.0', '1e3', '1E3', '-0.0', '2e-3', '1e+2']) {
    t.ok(refused(f), `${f} refused by default`);
    t.equal(parseJson(f, { allowFloats: true }), JSON.parse(f), `${f} allowed`);
  }
  t.equal(parseJson('1e21', { allowFloats: true }), 1e21, 'a large float is a float, not an unsafe integer');
  t.equal(parseJson('1.5e300', { allowFloats: true }), 1.5e300);
  t.ok(refused('1e400', { allowFloats: true }), 'overflows to Infinity');
  t.ok(refused('-1e400', { allowFloats: true }));
  for (const bad of ['01', '-', '+1', '.5', '1.', '0x10', 'NaN', 'Infinity', '1e', '--1']) t.ok(refused(bad, { allowFloats: true }), bad);
});

t.test('depth is bounded', async (t) => {
  const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);
  t.ok(Array.isArray(parseJson(nest(MAX_JSON_DEPTH))), `${MAX_JSON_DEPTH} levels`);
  t.ok(refused(nest(MAX_JSON_DEPTH + 1)));
  t.ok(refused('{"a":'.repeat(MAX_JSON_DEPTH + 1) + '1' + '}'.repeat(MAX_JSON_DEPTH + 1)));
  t.ok(refused(nest(100_000)), 'deep input is refused without overflowing the stack');
  t.ok(refused(nest(3), { maxDepth: 2 }));
});

t.test('trailing garbage and other syntax errors', async (t) => {
  for (const bad of ['{} x', '1 2', '[]]', '{"a":1}}', '"a"b', 'truex', 'nul', '[1,]', '{"a":1,}', '{,}', '[,1]', '{"a" 1}', "{'a':1}", '{a:1}', '', ' ', '\uFEFF1', '"\t"', '"\\x"', '"\\u12"', '"abc']) {
    t.ok(refused(bad), JSON.stringify(bad));
  }
  t.same(parseJson(' \t\n\r{ "a" : [ 1 , true , null ] } \n'), { a: [1, true, null] }, 'JSON whitespace everywhere');
  t.ok(refused(1 as unknown as string), 'non-string input');
});

t.test('__proto__ is an ordinary own key, never a prototype', async (t) => {
  const v = parseJson('{"__proto__":{"polluted":1},"a":2}') as Record<string, unknown>;
  t.equal(Object.getPrototypeOf(v), Object.prototype);
  t.ok(Object.hasOwn(v, '__proto__'), 'own property');
  t.same(Object.keys(v), ['__proto__', 'a']);
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched');
  t.equal((v as { polluted?: unknown }).polluted, undefined, 'not inherited');
  t.ok(isDeepStrictEqual(v, JSON.parse('{"__proto__":{"polluted":1},"a":2}')), 'same as JSON.parse');
  t.ok(refused('{"__proto__":1,"__proto__":2}'), 'duplicate __proto__');
  const empty = parseJson('{}');
  t.equal(Object.getPrototypeOf(empty), Object.prototype);
  const c = parseJson('{"constructor":1,"toString":2}') as Record<string, unknown>;
  t.equal(c.constructor, 1);
});

// JSON values the protocol accepts: safe integers, any strings (full Unicode, escapes), nesting.
const safeJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.boolean(),
    fc.maxSafeInteger(),
    fc.string({ unit: 'binary' }),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 6 }), tie('value'), { maxKeys: 5 }),
  ),
})).value;

t.test('on valid input, the same result as JSON.parse (property)', async (t) => {
  fc.assert(
    fc.property(safeJson, fc.constantFrom(undefined, 0, 2, '\t'), (value, indent) => {
      const text = JSON.stringify(value, null, indent);
      return isDeepStrictEqual(parseJson(text), JSON.parse(text));
    }),
    { numRuns: 500 },
  );
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 4 }), (value) => {
      const text = JSON.stringify(value);
      let ours: unknown;
      try {
        ours = parseJson(text, { allowFloats: true });
      } catch (err) {
        // The only refusal on JSON.stringify output: an integer literal beyond 2^53 − 1.
        return err instanceof EncodingError && /integer outside/.test(err.message);
      }
      return isDeepStrictEqual(ours, JSON.parse(text));
    }),
    { numRuns: 500 },
  );
  t.pass('properties hold');
});

// Values that break the rules too: integers beyond 2^53 - 1, floats, deep nesting.
const anyJson = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.maxSafeInteger(),
    fc.constantFrom(2 ** 53, -(2 ** 53), 1e21, -1e21, 1.5, -0.25, 1e-7, 123456789012345680000),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.string({ unit: 'binary', maxLength: 8 }),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: 'binary', maxLength: 4 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

function outcome(text: string, options: { allowFloats?: boolean; maxDepth?: number }): unknown {
  try {
    return { value: parseJson(text, options) };
  } catch (err) {
    return err instanceof EncodingError ? { refused: err.code } : { crashed: String(err) };
  }
}

t.test('compact text (the native fast path) and the same text spaced out (the strict parser) agree, refusals included (property)', async (t) => {
  fc.assert(
    fc.property(anyJson, fc.boolean(), fc.integer({ min: 1, max: 5 }), (value, allowFloats, maxDepth) => {
      const options = { allowFloats, maxDepth };
      return isDeepStrictEqual(outcome(JSON.stringify(value), options), outcome(JSON.stringify(value, null, 1), options));
    }),
    { numRuns: 2000 },
  );
  // Texts JSON.stringify would never write, compact all the same: the strict parser decides.
  t.ok(refused('{"a":1,"a":1}'), 'duplicate that reads back the same once parsed');
  t.ok(refused('[9007199254740993]'), 'rounded integer');
  t.ok(refused('[1.5]'), 'float, not allowed');
  t.same(parseJson('["\\u0041","\\/"]'), ['A', '/'], 'escapes JSON.stringify does not write');
  t.same(parseJson('{"\\u0061":1}'), { a: 1 });
});
