/** Secrets at rest: envelope encryption, KEK rings, stores, rotation (contracts/SPEC.md section 10). */
export { SecretsError } from './errors.ts';
export { Keyring, KEK_BYTES, KEK_ID_PATTERN, MAX_LIVE_KEKS, deriveKekId, formatKekList, generateKek, parseKekList, type Kek } from './keyring.ts';
export { KEK_ENV, KEK_FILE_ENV, formatKeyringFile, loadKeyring, parseKeyringFile, saveKeyringFile } from './keyring-source.ts';
export {
  MAX_SECRET_BYTES,
  SecretBox,
  checkWrapped,
  wrappedFromBytes,
  wrappedToBytes,
  type SecretRef,
  type WrappedSecret,
} from './secret-box.ts';
export { MemorySecretStore, type SecretStore, type StoredSecret } from './store.ts';
export { SqliteSecretStore } from './sqlite-store.ts';
export { REWRAP_BATCH_SIZE, SecretVault, type RewrapStats, type RotationResult } from './vault.ts';
export { KEY_FILE_ALG, atRestCipher, keyFileCipher, rotateKeyFile } from './seams.ts';
