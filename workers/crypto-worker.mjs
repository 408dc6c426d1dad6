// Piscina worker entry. Node 20 cannot load .ts files by itself: when the parent process did not
// pass a TypeScript loader down to its workers (execArgv), this plain-JS entry registers tsx
// first. Probing with a throwaway module keeps a failed import (which Node caches) off the real
// ones. The crypto provider is named by the pool (workerData.provider) so the workers run the
// same provider as their owner.
import { workerData } from 'node:worker_threads';

try {
  await import('./ts-probe.ts');
} catch (err) {
  if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
  const { register } = await import('tsx/esm/api');
  register();
}
const { runTask } = await import('./tasks.ts');
const { createCryptoProvider } = await import('../runtime/crypto/index.ts');
const crypto = createCryptoProvider({ name: workerData?.provider ?? 'node' });

export default function handle(message) {
  return runTask(crypto, message);
}
