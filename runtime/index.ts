/**
 * Talos's public API. Embed the runtime with `createRuntime(config)`; the protocol cores
 * (identity, crypto, and the areas added by later modules) are exported for direct use.
 *
 *   const runtime = await createRuntime({ talos: loadConfig('talos.config.json'), health: { port: 9464 } });
 *   runtime.gatewayUrl;            // ws://127.0.0.1:7800/talos/v1/tunnel
 *   await runtime.readiness();     // the same checks /readyz runs
 *   await runtime.stop();          // stops every actor, closes every handle
 */
import { buildRuntime, type Runtime, type RuntimeConfig } from './system.ts';

export type { Runtime, RuntimeConfig } from './system.ts';
export { START_TIMEOUT_MS } from './system.ts';
export { loadConfig, resolveConfig, type TalosConfig } from './config/config.ts';
export { createCryptoProvider, providers } from './crypto/index.ts';
export type { CryptoProvider, RandomSource } from './crypto/provider.ts';
export { didFromPublicKey, publicKeyFromDid, normalizeDid, type Did } from './identity/did.ts';
export { generateIdentity, loadKeyFile, saveKeyFile, type Identity } from './identity/index.ts';
export { TalosClientTransport } from './mcp/client-transport.ts';
export { encodeToken, mintToken, type Grant } from './capability/index.ts';
export { TalosError } from './errors.ts';
export type { DriftFinding, DriftPolicy } from './drift/index.ts';
export type { RestartPolicy } from '../machines/supervision.ts';
export type { SessionHandle, SupervisedSessionOptions } from '../actors/tga/session-child.ts';

/** Starts a Talos runtime: an XState actor system whose root is the TGA. */
export function createRuntime(config: RuntimeConfig = {}): Promise<Runtime> {
  return buildRuntime(config);
}
