import { CryptoError } from '../errors.ts';
import { createNobleProvider } from './noble.ts';
import { createNodeProvider } from './node.ts';
import type { CryptoProvider, ProviderName, RandomSource } from './provider.ts';

export type {
  CryptoProvider,
  Encapsulation,
  KemKeyPair,
  KeyPair,
  ProviderName,
  ProviderOptions,
  RandomSource,
} from './provider.ts';
export { createNobleProvider } from './noble.ts';
export { createNodeProvider, PUBLIC_KEY_CACHE_SIZE } from './node.ts';
export { seededRandom } from './seeded-random.ts';
export { isValidEd25519PublicKey } from './ed25519-points.ts';
export { AEAD_MAX_PLAINTEXT_BYTES, HKDF_SHA256_MAX_LENGTH, MAX_RANDOM_BYTES } from './checks.ts';

export const PROVIDER_NAMES: readonly ProviderName[] = ['noble', 'node'];
/** The environment variable that picks the provider when the caller names none. */
export const PROVIDER_ENV = 'TALOS_CRYPTO';
export const DEFAULT_PROVIDER: ProviderName = 'node';

export interface CreateProviderOptions {
  /** 'noble' or 'node'; defaults to $TALOS_CRYPTO, else 'node'. */
  name?: string;
  random?: RandomSource;
}

function isProviderName(name: string): name is ProviderName {
  return (PROVIDER_NAMES as readonly string[]).includes(name);
}

/** The provider named by config, by TALOS_CRYPTO, or the default; an unknown name is refused. */
export function createCryptoProvider(options: CreateProviderOptions = {}): CryptoProvider {
  const fromEnv = process.env[PROVIDER_ENV];
  const name = options.name ?? (fromEnv === undefined || fromEnv === '' ? DEFAULT_PROVIDER : fromEnv);
  if (!isProviderName(name)) {
    throw new CryptoError('crypto_unknown_provider', `unknown crypto provider; expected one of ${PROVIDER_NAMES.join(', ')}`);
  }
  const random = options.random === undefined ? {} : { random: options.random };
  return name === 'node' ? createNodeProvider(random) : createNobleProvider(random);
}

export interface ProvidersOptions {
  /**
   * Called once per provider, so each gets its own source (for example
   * `() => seededRandom('x')` gives both the same deterministic stream).
   */
  random?: () => RandomSource;
}

/** Both providers, noble first: for tests and tools that must hold them to the same results. */
export function providers(options: ProvidersOptions = {}): CryptoProvider[] {
  return PROVIDER_NAMES.map((name) => createCryptoProvider(options.random ? { name, random: options.random() } : { name }));
}
