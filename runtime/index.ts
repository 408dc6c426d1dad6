/**
 * Talos's public API. Embed the runtime with `createRuntime(config)`; the protocol cores
 * (identity, crypto, and the areas added by later modules) are exported for direct use.
 */
import { buildRuntime, type Runtime, type RuntimeConfig } from './system.ts';

export type { Runtime, RuntimeConfig } from './system.ts';
export { createCryptoProvider, providers } from './crypto/index.ts';
export type { CryptoProvider, RandomSource } from './crypto/provider.ts';
export { didFromPublicKey, publicKeyFromDid, normalizeDid, type Did } from './identity/did.ts';
export { TalosError } from './errors.ts';

/** Starts a Talos runtime: an XState actor system whose root is the TGA. */
export function createRuntime(config: RuntimeConfig = {}): Promise<Runtime> {
  return buildRuntime(config);
}
