import type { KeyObject } from 'node:crypto';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { nativeX25519 } from './native-x25519.ts';

/**
 * X25519 key pairs made ahead of use by a background thread, for the node provider's
 * x25519KeyPair() without an argument (a DH ratchet step takes one after the message
 * authenticates). A fresh pair costs a scalar multiplication (the public key): the worker pays
 * it off the caller's thread, the way the provider would: on the native addon when the
 * provider's X25519 runs there (native-x25519.ts; only the bytes are needed), else through
 * node:crypto, handing over the KeyObject too (shared between threads, not re-imported).
 *
 * Only for the operating system's random source: the worker draws from randomFillSync, which
 * is the node provider's source when none is injected. A provider with an injected (for
 * example seeded) source never uses the pool, so its draws stay in the same order.
 *
 * Taking never waits: when no pair is ready (the worker is starting, could not start, or is
 * behind) take() returns undefined and the caller makes the pair itself.
 */
export interface PooledPair {
  /** Only when the provider's X25519 goes through node:crypto. */
  key?: KeyObject;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
}

/** Pairs made ahead at most (each one ~0.2 KiB plus its OpenSSL key). */
export const X25519_POOL_SIZE = 16;
/**
 * Replacements are asked for, and delivered, in batches of this many: every message wakes the
 * receiving thread (~15 us of wall time measured under load), so one per pair would cost more.
 */
const REFILL_BATCH = X25519_POOL_SIZE / 2;

let port: MessagePort | null = null;
let failed = false;
let owed = 0;

function start(): MessagePort | null {
  if (port !== null || failed) return port;
  try {
    const channel = new MessageChannel();
    const worker = new Worker(new URL('./x25519-pool-worker.mjs', import.meta.url), {
      workerData: { port: channel.port2, native: nativeX25519 !== undefined },
      transferList: [channel.port2],
    });
    // Neither the worker nor the port keeps the process alive.
    worker.unref();
    channel.port1.unref();
    worker.on('error', () => {
      failed = true;
      port = null;
    });
    channel.port1.postMessage(X25519_POOL_SIZE);
    port = channel.port1;
  } catch {
    failed = true;
  }
  return port;
}

/** Pairs received from the worker and not yet taken, oldest last. */
const ready: { key?: KeyObject; d: Uint8Array; x: Uint8Array }[] = [];

/** A ready pair, or undefined; pairs taken are replaced (asked for REFILL_BATCH at a time). */
export function takePooledX25519Pair(): PooledPair | undefined {
  const from = start();
  if (from === null) return undefined;
  if (ready.length === 0) {
    const received = receiveMessageOnPort(from);
    if (received === undefined) return undefined;
    ready.push(...(received.message as typeof ready).reverse());
  }
  if (++owed === REFILL_BATCH) {
    from.postMessage(owed);
    owed = 0;
  }
  const { key, d, x } = ready.pop()!;
  return { ...(key ? { key } : {}), secretKey: d, publicKey: x };
}
