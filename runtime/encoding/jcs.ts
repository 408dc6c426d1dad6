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
      // Built by appending to one string: V8 makes that a rope, cheaper than parts and join().
      if (Array.isArray(value)) {
        // Index every slot: map() would skip holes and emit "[1,,3]", which is not JSON.
        let out = '[';
        for (let i = 0; i < value.length; i++) out += (i === 0 ? '' : ',') + serialize(value[i], depth + 1);
        return out + ']';
      }
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        throw new EncodingError('bad_jcs', 'only plain objects can be canonicalized');
      }
      const keys = Object.keys(value);
      if (!inOrder(keys)) keys.sort();
      let out = '{';
      for (let i = 0; i < keys.length; i++) {
        const k = keys[i]!;
        const v = (value as Record<string, unknown>)[k];
        if (v === undefined) throw new EncodingError('bad_jcs', `field ${JSON.stringify(k)} is undefined`);
        out += (i === 0 ? '' : ',') + quotedKey(k) + ':' + serialize(v, depth + 1);
      }
      return out + '}';
    }
    default:
      throw new EncodingError('bad_jcs', `a ${typeof value} cannot be canonicalized`);
  }
}

/** Whether the keys are already in sort() order (UTF-16 code units): objects built for signing usually are. */
function inOrder(keys: string[]): boolean {
  for (let i = 1; i < keys.length; i++) if (keys[i - 1]! > keys[i]!) return false;
  return true;
}

/** Quoted keys, remembered: the same few field names recur in every event, token and checkpoint. */
const QUOTED_KEYS_MAX = 4096;
const quotedKeys = new Map<string, string>();
function quotedKey(k: string): string {
  let q = quotedKeys.get(k);
  if (q === undefined) {
    q = JSON.stringify(k);
    if (quotedKeys.size < QUOTED_KEYS_MAX) quotedKeys.set(k, q);
  }
  return q;
}
