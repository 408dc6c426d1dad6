import { EncodingError } from '../errors.ts';
import { utf8 } from './bytes.ts';
import { MAX_JSON_DEPTH } from './json.ts';

/**
 * JSON Canonicalization Scheme (RFC 8785) for the values Talos signs and hashes.
 * Object keys sorted by UTF-16 code units, no whitespace, strings escaped as ECMAScript's
 * JSON.stringify does (which is what RFC 8785 specifies). Numbers must be safe integers
 * (PROTOCOL.md section 1: no floating point in signed or hashed objects); `undefined`,
 * functions, bigint and non-plain objects are refused rather than silently dropped.
 */
export function jcs(value: unknown): string {
  return serialize(value, 0);
}

export function jcsBytes(value: unknown): Uint8Array {
  return utf8(jcs(value));
}

/** The same nesting limit as parseJson: whatever parses can be canonicalized, and no more. */
const MAX_DEPTH = MAX_JSON_DEPTH;

function serialize(value: unknown, depth: number): string {
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'number':
      if (!Number.isSafeInteger(value)) {
        throw new EncodingError('bad_jcs', 'only integers within ±(2^53 − 1) can be canonicalized');
      }
      return Object.is(value, -0) ? '0' : String(value);
    case 'object': {
      if (value === null) return 'null';
      // `depth` counts the arrays and objects around this one.
      if (depth >= MAX_DEPTH) throw new EncodingError('bad_jcs', 'value nested too deeply');
      if (Array.isArray(value)) {
        // Index every slot: map() would skip holes and emit "[1,,3]", which is not JSON.
        const items: string[] = [];
        for (let i = 0; i < value.length; i++) items.push(serialize(value[i], depth + 1));
        return `[${items.join(',')}]`;
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new EncodingError('bad_jcs', 'only plain objects can be canonicalized');
      }
      const keys = Object.keys(value).sort();
      const parts: string[] = [];
      for (const k of keys) {
        const v = (value as Record<string, unknown>)[k];
        if (v === undefined) throw new EncodingError('bad_jcs', `field ${JSON.stringify(k)} is undefined`);
        parts.push(`${JSON.stringify(k)}:${serialize(v, depth + 1)}`);
      }
      return `{${parts.join(',')}}`;
    }
    default:
      throw new EncodingError('bad_jcs', `a ${typeof value} cannot be canonicalized`);
  }
}
