import { Ajv2020 } from 'ajv/dist/2020.js';
import type { AnySchemaObject, ErrorObject, ValidateFunction } from 'ajv';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SchemaError } from '../runtime/errors.ts';
import type { SchemaTypes } from './types.gen.ts';

/**
 * The one validation mechanism for wire contracts. Every contracts/schemas/<name>.schema.json
 * is loaded and compiled once, when this module is first imported (ajv, JSON Schema 2020-12,
 * strict mode). A schema is addressed by <name>; its `$id` must be
 * https://talos.dev/schemas/<name>.json, so schemas can `$ref` one another by that URL.
 * Adding a schema file is all it takes to add a type (then `npm run schemas` for its TS type).
 */
export const SCHEMA_DIR = join(dirname(fileURLToPath(import.meta.url)), 'schemas');
export const SCHEMA_SUFFIX = '.schema.json';
export const SCHEMA_ID_BASE = 'https://talos.dev/schemas/';
const NAME = /^[a-z][a-z0-9-]*$/;

/** Schema names known to the generated types; any loaded schema name is accepted at runtime. */
export type SchemaName = keyof SchemaTypes;
type TypeOf<K extends string> = K extends SchemaName ? SchemaTypes[K] : unknown;

export function schemaFiles(dir: string = SCHEMA_DIR): { name: string; file: string }[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith(SCHEMA_SUFFIX))
    .sort()
    .map((f) => ({ name: f.slice(0, -SCHEMA_SUFFIX.length), file: join(dir, f) }));
}

/** Compiles every schema file of `dir` (exported so tests can compile a scratch directory). */
export function compileSchemas(dir: string = SCHEMA_DIR): Map<string, ValidateFunction> {
  const ajv = new Ajv2020({
    strict: true,
    allErrors: false,
    // `"type": ["string", "integer"]` is clearer than an anyOf of two types.
    allowUnionTypes: true,
  });
  const names: string[] = [];
  for (const { name, file } of schemaFiles(dir)) {
    if (!NAME.test(name)) throw new Error(`schema file name ${name}${SCHEMA_SUFFIX} is not kebab-case`);
    const schema = JSON.parse(readFileSync(file, 'utf8')) as { $id?: unknown; $schema?: unknown; [k: string]: unknown };
    if (schema.$id !== `${SCHEMA_ID_BASE}${name}.json`) {
      throw new Error(`${name}${SCHEMA_SUFFIX}: $id must be ${SCHEMA_ID_BASE}${name}.json`);
    }
    if (schema.$schema !== 'https://json-schema.org/draft/2020-12/schema') {
      throw new Error(`${name}${SCHEMA_SUFFIX}: $schema must be JSON Schema 2020-12`);
    }
    ajv.addSchema(schema as AnySchemaObject);
    names.push(name);
  }
  // Compile after every schema is added, so cross-file $refs resolve.
  const validators = new Map<string, ValidateFunction>();
  for (const name of names) validators.set(name, ajv.getSchema(`${SCHEMA_ID_BASE}${name}.json`)!);
  return validators;
}

const validators = compileSchemas();

export function schemaNames(): string[] {
  return [...validators.keys()];
}

function validatorFor(type: string): ValidateFunction {
  const v = validators.get(type);
  if (!v) throw new SchemaError('schema_unknown', `no schema named ${JSON.stringify(type)}`);
  return v;
}

/** A field path such as `spk.pub` or `verificationMethod[0].id` ("(root)" for the value itself). */
function fieldPath(error: ErrorObject): string {
  let path = error.instancePath
    .split('/')
    .slice(1)
    .map((seg) => seg.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((seg, i) => (/^\d+$/.test(seg) ? `[${seg}]` : i === 0 ? seg : `.${seg}`))
    .join('');
  const child =
    error.keyword === 'required'
      ? (error.params as { missingProperty: string }).missingProperty
      : error.keyword === 'additionalProperties'
        ? (error.params as { additionalProperty: string }).additionalProperty
        : undefined;
  if (child !== undefined) path = path ? `${path}.${child}` : child;
  return path || '(root)';
}

/** Describes an error without echoing the value (it may be a secret) or a long pattern. */
function describe(error: ErrorObject): string {
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not allowed (closed schema)';
    case 'pattern':
      return 'has the wrong format or length';
    default:
      return error.message ?? error.keyword;
  }
}

/**
 * Returns `value`, typed, when it matches schema `type`; otherwise throws
 * SchemaError('schema_invalid') whose message names the offending field.
 */
export function validate<K extends string>(type: K, value: unknown): TypeOf<K> {
  const v = validatorFor(type);
  if (v(value)) return value as TypeOf<K>;
  const errors = (v.errors ?? []).map((e) => `${fieldPath(e)} ${describe(e)}`);
  throw new SchemaError('schema_invalid', `${type}: ${errors[0] ?? 'invalid'}`, errors);
}

export function isValid<K extends string>(type: K, value: unknown): value is TypeOf<K> {
  return validatorFor(type)(value) === true;
}
