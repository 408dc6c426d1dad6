import t from 'tap';
import fc from 'fast-check';
import { EncodingError } from '../errors.ts';
import { jcs, jcsBytes } from './jcs.ts';
import { MAX_JSON_DEPTH, parseJson } from './json.ts';

function refused(value: unknown): boolean {
  try {
    jcs(value);
  } catch (err) {
    return err instanceof EncodingError && err.code === 'bad_jcs';
  }
  return false;
}

/*
 * Known answers from the JCS reference test data, cyberphone/json-canonicalization
 * (testdata/input/*.json -> testdata/output/*.json, https://github.com/cyberphone/json-canonicalization),
 * the cases that use only integers and strings: weird.json (UTF-16 key order, with a non-BMP key),
 * structures.json, french.json (no locale collation). And RFC 8785 section 3.2.2.2's string
 * escaping rules, with the number array of its section 3.2.4 example left out.
 */
t.test('reference test data: weird.json (key order by UTF-16 code units, non-BMP)', async (t) => {
  const input = '{\n  "\\u20ac": "Euro Sign",\n  "1": "One",\n  "\\u0080": "Control\\u007f",\n  "\\ud83d\\ude02": "Smiley",\n  "\\u00f6": "Latin Small Letter O With Diaeresis",\n  "\\ufb33": "Hebrew Letter Dalet With Dagesh",\n  "</script>": "Browser Challenge"\n}\n';
  const expected =
    '{"1":"One","</script>":"Browser Challenge","\u0080":"Control\u007f","\u00f6":"Latin Small Letter O With Diaeresis",' +
    '"\u20ac":"Euro Sign","\ud83d\ude02":"Smiley","\ufb33":"Hebrew Letter Dalet With Dagesh"}';
  t.equal(jcs(parseJson(input)), expected);
  // U+1F602 (surrogates D83D DE02) sorts BEFORE U+FB33: by code units, not by code points.
  t.ok(expected.indexOf('\ud83d\ude02') < expected.indexOf('\ufb33'));
});

t.test('reference test data: structures.json and french.json', async (t) => {
  const structures = '{\n  "1": {"f": {"f": "hi","F": 5} ,"\\n": 56.0},\n  "10": { },\n  "": "empty",\n  "a": { },\n  "111": [ { } ],\n  "A": { }\n}';
  t.equal(jcs(parseJson(structures, { allowFloats: true })), '{"":"empty","1":{"\\n":56,"f":{"F":5,"f":"hi"}},"10":{},"111":[{}],"A":{},"a":{}}');
  const french = '{\n  "peach": "This sorting order",\n  "péché": "is wrong according to French",\n  "pêche": "but canonicalization MUST",\n  "sin":   "ingnore locale"\n}\n';
  t.equal(jcs(parseJson(french)), '{"peach":"This sorting order","péché":"is wrong according to French","pêche":"but canonicalization MUST","sin":"ingnore locale"}');
});

t.test('RFC 8785 string escaping and literals', async (t) => {
  const input = '{"string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/", "literals": [null, true, false]}';
  t.equal(jcs(parseJson(input)), '{"literals":[null,true,false],"string":"\u20ac$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}');
  t.equal(jcs('\b\f\n\r\t\u0000\u001f'), '"\\b\\f\\n\\r\\t\\u0000\\u001f"', 'short escapes, lower-case \\u00xx');
  t.equal(jcs('é\u2028'), '"é\u2028"', 'non-ASCII stays raw');
  t.same(jcsBytes({ a: 'é' }), new Uint8Array(Buffer.from('{"a":"é"}', 'utf8')), 'UTF-8 bytes');
});

t.test('integers only; undefined and non-JSON values refused', async (t) => {
  t.equal(jcs([0, -0, 1, -1, 9007199254740991, -9007199254740991]), '[0,0,1,-1,9007199254740991,-9007199254740991]');
  for (const bad of [1.5, 0.1, 1e21, 9007199254740992, NaN, Infinity, -Infinity]) t.ok(refused(bad), String(bad));
  t.ok(refused({ a: 1.5 }), 'nested float');
  t.ok(refused({ a: undefined }), 'undefined field');
  t.ok(refused([1, undefined]), 'undefined element');
  // eslint-disable-next-line no-sparse-arrays
  t.ok(refused([1, , 3]), 'array hole');
  t.ok(refused(undefined));
  t.ok(refused(() => 1));
  t.ok(refused(Symbol('s')));
  t.ok(refused(1n));
  t.ok(refused(new Date(0)), 'Date');
  t.ok(refused(new Uint8Array(1)), 'typed array');
  t.ok(refused(new Map()), 'Map');
  t.equal(jcs(Object.assign(Object.create(null), { b: 1, a: 2 })), '{"a":2,"b":1}', 'null-prototype object');
  const nest = (n: number) => '['.repeat(n) + ']'.repeat(n);
  t.equal(jcs(parseJson(nest(MAX_JSON_DEPTH))), nest(MAX_JSON_DEPTH), 'as deep as parseJson accepts');
  t.ok(refused(JSON.parse(nest(MAX_JSON_DEPTH + 1))), 'one level deeper is refused, as by parseJson');
  t.ok(refused(JSON.parse('{"a":'.repeat(MAX_JSON_DEPTH + 1) + '1' + '}'.repeat(MAX_JSON_DEPTH + 1))), 'objects too');
});

t.test('a __proto__ own key is kept and sorted like any other', async (t) => {
  const v = parseJson('{"b":1,"__proto__":{"x":2}}');
  t.equal(jcs(v), '{"__proto__":{"x":2},"b":1}');
});

t.test('JCS output is JSON that parses back to the same canonical form (property)', async (t) => {
  const value = fc.letrec((tie) => ({
    v: fc.oneof(
      { depthSize: 'small' },
      fc.constant(null),
      fc.boolean(),
      fc.maxSafeInteger(),
      fc.string({ unit: 'grapheme' }),
      fc.array(tie('v'), { maxLength: 4 }),
      fc.dictionary(fc.string({ unit: 'grapheme', maxLength: 5 }), tie('v'), { maxKeys: 4 }),
    ),
  })).v;
  fc.assert(
    fc.property(value, (v) => {
      const text = jcs(v);
      return jcs(parseJson(text)) === text && text === jcs(JSON.parse(JSON.stringify(v)));
    }),
    { numRuns: 500 },
  );
  // Key order is exactly the UTF-16 code-unit order, for any keys.
  fc.assert(
    fc.property(fc.uniqueArray(fc.string({ unit: 'binary', maxLength: 4 }), { maxLength: 8 }), (keys) => {
      const obj = Object.fromEntries(keys.map((k, i) => [k, i]));
      const sorted = [...keys].sort((a, b) => {
        for (let i = 0; i < Math.min(a.length, b.length); i++) {
          if (a.charCodeAt(i) !== b.charCodeAt(i)) return a.charCodeAt(i) - b.charCodeAt(i);
        }
        return a.length - b.length;
      });
      const expected = `{${sorted.map((k) => `${JSON.stringify(k)}:${obj[k]}`).join(',')}}`;
      return jcs(obj) === expected;
    }),
    { numRuns: 500 },
  );
  t.pass('properties hold');
});
