// Helper thread of simulations/key-pairs-ahead.ts: waits on the ring in shared memory, and for
// every slot the run has submitted computes the public key of the slot's secret with the native
// addon's fixed-base X25519, writes it after the secret, wipes the secret and counts the slot
// done, in order. Plain JavaScript, so it starts without a TypeScript loader.
import { createRequire } from 'node:module';
import { workerData } from 'node:worker_threads';
import '../runtime/crypto/lowest-priority.mjs'; // a helper left behind only means the run computes more

const { buffer, slots, slotBytes, controlBytes } = workerData;
const SUBMITTED = 0;
const DONE = 1;
const ASLEEP = 2;
const control = new Int32Array(buffer, 0, 3);
// While work keeps coming it looks every POLL_MS (being woken would cost the run's thread
// more); after IDLE_POLLS looks that found nothing, it says so and sleeps until woken.
const POLL_MS = 1;
const IDLE_POLLS = 100;
const ring = new Uint8Array(buffer, controlBytes);
const x25519Base = createRequire(import.meta.url)('../runtime/crypto/native/build/Release/talos_native.node').x25519Base;
// The addon reads and writes through these (it wipes its copy of the scalar).
const scalar = new Uint8Array(32);
const product = new Uint8Array(32);

let done = Atomics.load(control, DONE);
let idle = 0;
for (;;) {
  if (Atomics.load(control, SUBMITTED) === done) {
    if (idle++ < IDLE_POLLS) {
      Atomics.wait(control, SUBMITTED, done, POLL_MS);
      continue;
    }
    Atomics.store(control, ASLEEP, 1);
    Atomics.wait(control, SUBMITTED, done);
    Atomics.store(control, ASLEEP, 0);
  }
  idle = 0;
  const submitted = Atomics.load(control, SUBMITTED);
  // Positions wrap at 2^32 as Int32s (key-pairs-ahead.ts); `slots` is a power of two.
  for (; done !== submitted; done = (done + 1) | 0) {
    const at = (done & (slots - 1)) * slotBytes;
    scalar.set(ring.subarray(at, at + 32));
    ring.fill(0, at, at + 32);
    x25519Base(scalar, product);
    ring.set(product, at + 32);
    Atomics.store(control, DONE, (done + 1) | 0);
  }
}
