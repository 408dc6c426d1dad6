// Worker of runtime/crypto/x25519-pool.ts: makes X25519 key pairs ahead of use, exactly as the
// node provider does when it has no injected random source (32 bytes from randomFillSync,
// imported as a JWK private key, which makes OpenSSL compute the public key), and posts each
// as { key, d, x }: the private KeyObject (shared with the receiving thread, not re-imported),
// the secret and the public key. It makes one pair per credit it receives and posts each batch
// as one array, so the pool never holds more pairs than the credits it handed out. Plain
// JavaScript with node: built-ins only, so it starts without a TypeScript loader.
import { createPrivateKey, randomFillSync } from 'node:crypto';
import { setPriority } from 'node:os';
import { workerData } from 'node:worker_threads';
import { wipingPoolAllocations } from './buffer-pool.mjs';

// Lowest priority, so making keys ahead never takes a core from the thread that uses them (on
// a busy machine the pool then runs dry and the caller makes its own, as without a pool). Only
// on Linux, where the nice value belongs to the calling thread; elsewhere it is the process's.
if (process.platform === 'linux') {
  try {
    setPriority(19);
  } catch {
    // not allowed here: keep the default priority
  }
}

/** @type {import('node:worker_threads').MessagePort} */
const port = workerData.port;

function makePair() {
  const d = randomFillSync(new Uint8Array(32));
  // Encoded from a view of `d` itself (wiped below): Buffer.from(d) would copy the secret into
  // Node's shared Buffer pool, where no one wipes it. The view may cost `d` a small malloc,
  // which this background thread can afford.
  const jwk = { kty: 'OKP', crv: 'X25519', d: Buffer.from(d.buffer, d.byteOffset, 32).toString('base64url'), x: '' };
  // Node's JWK import leaves its own decoded copy of `d` in this thread's Buffer pool: wiped.
  const key = wipingPoolAllocations(() => createPrivateKey({ key: jwk, format: 'jwk' }));
  const x = new Uint8Array(Buffer.from(key.export({ format: 'jwk' }).x ?? '', 'base64url'));
  return { key, d, x };
}

// One message per batch of credits: every message wakes the receiving thread's port.
port.on('message', (credits) => {
  const pairs = [];
  for (let i = 0; i < credits; i++) pairs.push(makePair());
  port.postMessage(pairs);
  // The posted copies are the receiver's; this thread keeps no secret bytes (only the JWK's
  // short-lived base64url strings, until they are collected).
  for (const pair of pairs) pair.d.fill(0);
});
