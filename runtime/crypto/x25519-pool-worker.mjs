// Worker of runtime/crypto/x25519-pool.ts: makes X25519 key pairs ahead of use, exactly as the
// node provider does when it has no injected random source (32 bytes from randomFillSync), and
// posts each as { d, x, key? }: the secret, the public key and, for node:crypto's X25519 path, the
// private KeyObject (shared with the receiving thread, not re-imported). When the provider's
// X25519 runs on the native addon (workerData.native), so does the public key here; else a JWK
// import makes OpenSSL compute it. It makes one pair per credit it receives and posts each
// batch as one array, so the pool never holds more pairs than the credits it handed out. Plain
// JavaScript, so it starts without a TypeScript loader.
import { createPrivateKey, randomFillSync } from 'node:crypto';
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
import { wipingPoolAllocations } from './buffer-pool.mjs';
import './lowest-priority.mjs';

/** @type {import('node:worker_threads').MessagePort} */
const port = workerData.port;

/** The addon's fixed-base multiplication (native/x25519.c), or undefined for node:crypto's path. */
const addon = workerData.native ? loadAddon() : undefined;
const scalar = new Uint8Array(32);
const product = new Uint8Array(32);

function loadAddon() {
  try {
    return createRequire(import.meta.url)('./native/build/Release/talos_native.node').x25519Base;
  } catch {
    return undefined; // the pairs then carry KeyObjects, which the provider does not need
  }
}

function makePair() {
  const d = randomFillSync(new Uint8Array(32));
  if (addon !== undefined) {
    // The addon wipes the scalar's copy; the public key's is wiped once copied out.
    scalar.set(d);
    addon(scalar, product);
    const x = product.slice();
    product.fill(0);
    return { d, x };
  }
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
