// Piscina worker entry (plain JS: it gets a TypeScript loader first). The crypto provider is
// named by the pool (workerData.provider) so the workers run the same provider as their owner.
import { workerData } from 'node:worker_threads';
import './typescript-loader.mjs';

const { runTask } = await import('./tasks.ts');
const { createCryptoProvider } = await import('../runtime/crypto/index.ts');
const crypto = createCryptoProvider({ name: workerData?.provider ?? 'node' });

export default function handle(message) {
  return runTask(crypto, message);
}
