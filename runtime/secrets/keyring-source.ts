import { chmodSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { CryptoProvider } from '../crypto/provider.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { parseJson } from '../encoding/json.ts';
import { EncodingError, SchemaError } from '../errors.ts';
import { validate } from '../../contracts/validate.ts';
import type { KekRing } from '../../contracts/types.gen.ts';
import { SecretsError } from './errors.ts';
import { KEK_BYTES, Keyring, parseKekList } from './keyring.ts';

/**
 * Where KEKs come from (contracts/SPEC.md section 10):
 * - the environment variable TALOS_KEK: `id:KEY[,id:KEY…]`, first = primary (see parseKekList);
 * - or a key-ring file (contracts/schemas/kek-ring.schema.json), mode 0600, named by
 *   TALOS_KEK_FILE or passed explicitly.
 * The environment wins when both are set. The KEKs are the root of secrets at rest: keep them
 * away from the data they protect (another volume, a secret manager that injects the variable).
 */
export const KEK_ENV = 'TALOS_KEK';
export const KEK_FILE_ENV = 'TALOS_KEK_FILE';
/** A key-ring file larger than this is not one. */
export const MAX_KEK_FILE_BYTES = 16 * 1024;

export function parseKeyringFile(text: string): Keyring {
  if (text.length > MAX_KEK_FILE_BYTES) throw new SecretsError('kek_malformed', 'key-ring file is too large');
  let doc: unknown;
  try {
    doc = parseJson(text);
  } catch (err) {
    if (err instanceof EncodingError) throw new SecretsError('kek_malformed', 'key-ring file is not valid JSON');
    throw err;
  }
  let d: KekRing;
  try {
    d = validate('kek-ring', doc);
  } catch (err) {
    if (err instanceof SchemaError) throw new SecretsError('kek_malformed', err.message);
    throw err;
  }
  const keks = d.keys.map((e) => ({ id: e.id, key: fromB64u(e.key, KEK_BYTES) }));
  return new Keyring(keks, d.primary);
}

export function formatKeyringFile(keyring: Keyring): string {
  const doc = {
    v: 1,
    kind: 'talos-kek-ring',
    primary: keyring.primaryId,
    keys: keyring.ids().map((id) => ({ id, key: toB64u(keyring.key(id)) })),
  };
  return JSON.stringify(doc, null, 2) + '\n';
}

/** Writes the ring atomically (temp file + rename) with owner-only permissions. */
export function saveKeyringFile(path: string, keyring: Keyring): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, formatKeyringFile(keyring), { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, path);
}

/** Loads the keyring from TALOS_KEK, else the file named by `file` or TALOS_KEK_FILE. */
export function loadKeyring(
  crypto: CryptoProvider,
  options: { env?: NodeJS.ProcessEnv; file?: string } = {},
): Keyring {
  const env = options.env ?? process.env;
  const list = env[KEK_ENV];
  if (list !== undefined && list.trim() !== '') return parseKekList(crypto, list);
  const file = options.file ?? env[KEK_FILE_ENV];
  if (!file) throw new SecretsError('kek_unknown', `no KEK configured: set ${KEK_ENV} or ${KEK_FILE_ENV}`);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new SecretsError('kek_unknown', 'the key-ring file cannot be read');
  }
  return parseKeyringFile(text);
}
