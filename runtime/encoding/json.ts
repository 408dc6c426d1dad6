import { EncodingError } from '../errors.ts';

/**
 * JSON as the protocol accepts it (PROTOCOL.md section 1): duplicate keys refused, integers
 * only within ±(2^53 − 1), non-integers refused unless `allowFloats`, nesting bounded.
 * JSON.parse silently keeps the last duplicate and rounds large integers, so we parse ourselves,
 * or check what JSON.parse read by writing it back (parseCompact).
 */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

export interface ParseOptions {
  /** Accept non-integer numbers (tool arguments inside MCP payloads may carry them). */
  allowFloats?: boolean;
  /** Maximum nesting of arrays and objects. */
  maxDepth?: number;
}

export const MAX_JSON_DEPTH = 64;
const NUMBER = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
const STRING_BODY = /(?:[^"\\\u0000-\u001f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"/y;

export function parseJson(text: string, options: ParseOptions = {}): Json {
  if (typeof text !== 'string') throw new EncodingError('bad_json', 'JSON input must be a string');
  const allowFloats = options.allowFloats ?? false;
  const maxDepth = options.maxDepth ?? MAX_JSON_DEPTH;
  return parseCompact(text, allowFloats, maxDepth) ?? parseStrict(text, allowFloats, maxDepth);
}

/**
 * The fast path, for text exactly as JSON.stringify writes it (what our peers and the MCP SDK
 * send): parsed natively, then written back. If that gives the same text, the text had no
 * duplicate key (a dropped duplicate would be missing) and no rounded integer (it would read
 * differently), and every number is written as an integer literal exactly when it is an
 * integer below 1e21; `obeysRules` then applies the number and depth rules as the strict parser
 * does. Anything else (whitespace, other escapes, any error) takes the strict parser, which
 * also says where the text is wrong. Measured on an 800-byte tools/call: ~2.5x faster.
 */
function parseCompact(text: string, allowFloats: boolean, maxDepth: number): Json | undefined {
  try {
    const value = JSON.parse(text) as Json;
    return obeysRules(value, allowFloats, maxDepth) && JSON.stringify(value) === text ? value : undefined;
  } catch {
    return undefined;
  }
}

function obeysRules(value: Json, allowFloats: boolean, depthLeft: number): boolean {
  if (typeof value === 'number') {
    // JSON.stringify writes an integer below 1e21 without fraction or exponent: the strict
    // parser then requires it exact; anything else it writes as a float.
    return Number.isInteger(value) && Math.abs(value) < 1e21 ? Number.isSafeInteger(value) : allowFloats;
  }
  if (value === null || typeof value !== 'object') return true;
  if (depthLeft === 0) return false;
  for (const v of Array.isArray(value) ? value : Object.values(value)) {
    if (!obeysRules(v, allowFloats, depthLeft - 1)) return false;
  }
  return true;
}

function parseStrict(text: string, allowFloats: boolean, maxDepth: number): Json {
  let pos = 0;

  const fail = (what: string): never => {
    throw new EncodingError('bad_json', `${what} at offset ${pos}`);
  };
  const skipWs = () => {
    for (;;) {
      const c = text.charCodeAt(pos);
      if (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) pos++;
      else return;
    }
  };
  const parseString = (): string => {
    const start = pos; // at the opening quote
    STRING_BODY.lastIndex = pos + 1;
    if (!STRING_BODY.test(text)) fail('invalid string');
    pos = STRING_BODY.lastIndex;
    return JSON.parse(text.slice(start, pos)) as string;
  };
  const parseNumber = (): number => {
    NUMBER.lastIndex = pos;
    const m = NUMBER.exec(text);
    if (!m) return fail('invalid value');
    pos = NUMBER.lastIndex;
    const n = Number(m[0]);
    // A literal written without fraction or exponent is an integer and must be exact; any
    // other literal is a float, refused unless allowed (then it must be finite: 1e400 is not).
    if (!/[.eE]/.test(m[0])) {
      if (!Number.isSafeInteger(n)) fail('integer outside ±(2^53 − 1)');
    } else if (!allowFloats) {
      fail('number written with a fraction or exponent');
    } else if (!Number.isFinite(n)) {
      fail('number out of range');
    }
    return n;
  };
  const parseValue = (depth: number): Json => {
    skipWs();
    const c = text[pos];
    if (c === '{') {
      if (depth >= maxDepth) fail('nesting too deep');
      pos++;
      const obj: Record<string, Json> = Object.create(null);
      const seen = new Set<string>();
      skipWs();
      if (text[pos] === '}') {
        pos++;
        return { ...obj };
      }
      for (;;) {
        skipWs();
        if (text[pos] !== '"') fail('expected a key');
        const key = parseString();
        if (seen.has(key)) fail(`duplicate key ${JSON.stringify(key.slice(0, 64))}`);
        seen.add(key);
        skipWs();
        if (text[pos] !== ':') fail("expected ':'");
        pos++;
        obj[key] = parseValue(depth + 1);
        skipWs();
        if (text[pos] === ',') pos++;
        else if (text[pos] === '}') {
          pos++;
          // A plain object (prototype restored) so callers can use it normally;
          // '__proto__' was stored as an own data property above and stays one.
          return Object.setPrototypeOf(obj, Object.prototype) as Record<string, Json>;
        } else fail("expected ',' or '}'");
      }
    }
    if (c === '[') {
      if (depth >= maxDepth) fail('nesting too deep');
      pos++;
      const arr: Json[] = [];
      skipWs();
      if (text[pos] === ']') {
        pos++;
        return arr;
      }
      for (;;) {
        arr.push(parseValue(depth + 1));
        skipWs();
        if (text[pos] === ',') pos++;
        else if (text[pos] === ']') {
          pos++;
          return arr;
        } else fail("expected ',' or ']'");
      }
    }
    if (c === '"') return parseString();
    if (text.startsWith('true', pos)) return (pos += 4), true;
    if (text.startsWith('false', pos)) return (pos += 5), false;
    if (text.startsWith('null', pos)) return (pos += 4), null;
    return parseNumber();
  };

  const value = parseValue(0);
  skipWs();
  if (pos !== text.length) fail('trailing characters');
  return value;
}
