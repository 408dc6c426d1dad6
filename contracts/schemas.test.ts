import t, { type Test } from 'tap';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateTypes, TYPES_FILE } from './generate-types.ts';
import { compileSchemas, isValid, schemaNames, validate } from './validate.ts';
import { SchemaError } from '../runtime/errors.ts';
import { toB64u } from '../runtime/encoding/base64url.ts';
import { createNobleProvider } from '../runtime/crypto/noble.ts';
import { didFromPublicKey } from '../runtime/identity/did.ts';

const here = dirname(fileURLToPath(import.meta.url));
const crypto = createNobleProvider();
const did = didFromPublicKey(crypto.ed25519KeyPair().publicKey);
const b32 = toB64u(new Uint8Array(32).fill(7));
const b64 = toB64u(new Uint8Array(64).fill(9));
const b1184 = toB64u(new Uint8Array(1184).fill(3));

t.test('types.gen.ts is up to date with the schema files (run npm run schemas)', async (t) => {
  t.equal(await generateTypes(), readFileSync(TYPES_FILE, 'utf8'));
});

t.test('every *.schema.json file is loaded', async (t) => {
  const files = readdirSync(join(here, 'schemas'))
    .filter((f) => f.endsWith('.schema.json'))
    .map((f) => f.replace(/\.schema\.json$/, ''))
    .sort();
  t.same(schemaNames().sort(), files);
  for (const name of ['did-document', 'prekey-bundle', 'one-time-prekey', 'pq-one-time-prekey', 'key-file']) {
    t.ok(files.includes(name), name);
  }
});

const bundle = () => ({ v: 1, did, ik_dh: b32, spk: { id: 1, pub: b32 }, pqspk: { id: 2, pub: b1184 }, exp: 1_700_000_000_000, sig: b64 });

function refused(t: Test, type: string, value: unknown, field: string) {
  t.notOk(isValid(type, value), `${field}: isValid false`);
  let caught: unknown;
  try {
    validate(type, value);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof SchemaError, `${field}: SchemaError`);
  t.equal((caught as SchemaError).code, 'schema_invalid');
  t.match((caught as SchemaError).message, field, `message names ${field}`);
}

t.test('prekey-bundle: accepts a well-formed bundle, refuses each kind of defect', async (t) => {
  t.same(validate('prekey-bundle', bundle()), bundle());
  const { pqspk: _omit, ...noPq } = bundle();
  t.ok(isValid('prekey-bundle', noPq), 'pqspk is optional');
  refused(t, 'prekey-bundle', { ...bundle(), extra: 1 }, 'extra');
  refused(t, 'prekey-bundle', { ...bundle(), sig: undefined }, 'sig');
  refused(t, 'prekey-bundle', { ...bundle(), v: 2 }, 'v');
  refused(t, 'prekey-bundle', { ...bundle(), did: did.replace('did:talos:', 'did:key:') }, 'did');
  refused(t, 'prekey-bundle', { ...bundle(), did: 'did:talos:z6Mk' }, 'did');
  refused(t, 'prekey-bundle', { ...bundle(), ik_dh: b32.slice(1) }, 'ik_dh');
  refused(t, 'prekey-bundle', { ...bundle(), ik_dh: b32 + 'A' }, 'ik_dh');
  refused(t, 'prekey-bundle', { ...bundle(), ik_dh: b32.slice(0, 42) + 'B' }, 'ik_dh'); // non-zero trailing bits
  refused(t, 'prekey-bundle', { ...bundle(), ik_dh: b32.slice(0, 42) + '=' }, 'ik_dh');
  refused(t, 'prekey-bundle', { ...bundle(), spk: { id: 2 ** 32, pub: b32 } }, 'spk.id');
  refused(t, 'prekey-bundle', { ...bundle(), spk: { id: -1, pub: b32 } }, 'spk.id');
  refused(t, 'prekey-bundle', { ...bundle(), spk: { id: 1.5, pub: b32 } }, 'spk.id');
  refused(t, 'prekey-bundle', { ...bundle(), spk: { id: 1, pub: b32, x: 1 } }, 'spk.x');
  refused(t, 'prekey-bundle', { ...bundle(), pqspk: { id: 1, pub: b32 } }, 'pqspk.pub');
  refused(t, 'prekey-bundle', { ...bundle(), exp: 1.5 }, 'exp');
  refused(t, 'prekey-bundle', { ...bundle(), exp: '1' }, 'exp');
  refused(t, 'prekey-bundle', { ...bundle(), sig: b32 }, 'sig');
  refused(t, 'prekey-bundle', [bundle()], '(root)');
});

t.test('one-time prekeys', async (t) => {
  t.ok(isValid('one-time-prekey', { id: 0, pub: b32 }));
  t.ok(isValid('one-time-prekey', { id: 4294967295, pub: b32 }));
  refused(t, 'one-time-prekey', { id: 1, pub: b32, sig: b64 }, 'sig');
  refused(t, 'one-time-prekey', { id: 1 }, 'pub');
  t.ok(isValid('pq-one-time-prekey', { id: 3, pub: b1184, sig: b64 }));
  refused(t, 'pq-one-time-prekey', { id: 3, pub: b1184 }, 'sig');
  refused(t, 'pq-one-time-prekey', { id: 3, pub: b1184.slice(2), sig: b64 }, 'pub');
});

t.test('key-file: clear or sealed secrets, nothing else', async (t) => {
  const file = { v: 1, kind: 'talos-identity-key-file', did, created: 5, ik_dh: b32, protection: { alg: 'none' }, secrets: { ik_sig: b32, ik_dh: b32 } };
  t.ok(isValid('key-file', file));
  t.ok(isValid('key-file', { ...file, protection: { alg: 'xchacha20poly1305-argon2id', params: { salt: 'abc', m: 65536 } }, secrets: 'c2VhbGVk' }));
  refused(t, 'key-file', { ...file, secrets: { ik_sig: b32 } }, 'secrets');
  refused(t, 'key-file', { ...file, secrets: 'not base64url!' }, 'secrets');
  refused(t, 'key-file', { ...file, kind: 'other' }, 'kind');
  refused(t, 'key-file', { ...file, protection: { alg: 'none', extra: true } }, 'protection.extra');
});

t.test('did-document: field paths inside arrays', async (t) => {
  const key = did.slice('did:talos:'.length);
  const doc = {
    '@context': ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'],
    id: did,
    verificationMethod: [{ id: `${did}#${key}`, type: 'Multikey', controller: did, publicKeyMultibase: key }],
    authentication: [`${did}#${key}`],
    assertionMethod: [`${did}#${key}`],
    capabilityInvocation: [`${did}#${key}`],
    capabilityDelegation: [`${did}#${key}`],
  };
  t.ok(isValid('did-document', doc));
  refused(t, 'did-document', { ...doc, '@context': ['https://www.w3.org/ns/did/v1'] }, '@context');
  refused(t, 'did-document', { ...doc, verificationMethod: [{ ...doc.verificationMethod[0], type: 'JsonWebKey2020' }] }, 'verificationMethod[0].type');
  refused(t, 'did-document', { ...doc, verificationMethod: [{ ...doc.verificationMethod[0], publicKeyJwk: {} }] }, 'verificationMethod[0].publicKeyJwk');
  refused(t, 'did-document', { ...doc, service: [] }, 'service');
});

t.test('unknown schema names are a typed error', async (t) => {
  t.throws(() => validate('no-such-thing', {}), { code: 'schema_unknown' });
  t.throws(() => isValid('no-such-thing', {}), { code: 'schema_unknown' });
});

t.test('error messages never echo the value', async (t) => {
  const secret = 'S3CRET' + 'x'.repeat(37);
  try {
    validate('one-time-prekey', { id: 1, pub: secret });
    t.fail('accepted');
  } catch (err) {
    t.notMatch((err as Error).message, /S3CRET/);
  }
});

t.test('scratch schema directory: cross-file $ref, and the loader refuses bad schema files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-schemas-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, schema: object) => writeFileSync(join(dir, `${name}.schema.json`), JSON.stringify(schema));
  const base = { $schema: 'https://json-schema.org/draft/2020-12/schema' };
  write('inner-thing', { ...base, $id: 'https://talos.dev/schemas/inner-thing.json', title: 'InnerThing', type: 'object', additionalProperties: false, required: ['n'], properties: { n: { type: 'integer' } } });
  write('outer-thing', {
    ...base,
    $id: 'https://talos.dev/schemas/outer-thing.json',
    title: 'OuterThing',
    type: 'object',
    additionalProperties: false,
    required: ['items'],
    properties: { items: { type: 'array', items: { $ref: 'https://talos.dev/schemas/inner-thing.json' } } },
  });
  const validators = compileSchemas(dir);
  t.ok(validators.get('outer-thing')!({ items: [{ n: 1 }] }));
  t.notOk(validators.get('outer-thing')!({ items: [{ n: 'x' }] }), 'the referenced schema is applied');
  const ts = await generateTypes(dir);
  t.match(ts, /export interface OuterThing \{\n {2}items: InnerThing\[\];\n\}/, 'the reference becomes the other file\'s type');
  t.equal(ts.match(/export interface InnerThing/g)?.length, 1, 'declared once');
  t.match(ts, /'outer-thing': OuterThing;/);

  write('bad-id', { ...base, $id: 'https://talos.dev/schemas/other.json', type: 'object' });
  t.throws(() => compileSchemas(dir), /\$id must be/);
  rmSync(join(dir, 'bad-id.schema.json'));
  write('not-strict', { ...base, $id: 'https://talos.dev/schemas/not-strict.json', type: 'object', unknownKeyword: 1 });
  t.throws(() => compileSchemas(dir), /strict mode/, 'ajv strict mode refuses unknown keywords');
});
