import { Worker } from 'node:worker_threads';
import { withMethods, type CryptoProvider, type KeyPair, type RandomSource } from '../runtime/crypto/provider.ts';
import { nativeX25519 } from '../runtime/crypto/native-x25519.ts';

/**
 * A run's fresh X25519 key pairs (x25519KeyPair() without a secret: every DH ratchet step,
 * handshake ephemeral and prekey) come from a seeded stream of their own, so their secrets can
 * be drawn before they are needed, and a helper thread computes their public keys (a fixed-base
 * multiplication each: one of a DH ratchet step's three X25519 multiplications) while the run
 * goes on. The pairs and their order are the stream's alone: a public key the helper has not
 * finished is computed here, from the same secret, so the helper changes how fast a run goes,
 * never what it does.
 *
 * The helper is one worker thread per thread that runs simulations, shared by its runs one
 * after another through a ring in shared memory: the run draws secrets into it (at most AHEAD
 * before use), the helper turns each slot's secret into its public key, wipes the secret and
 * counts the slot done. A run created later takes the ring over; an earlier one still running
 * then computes its own public keys. Only with the native addon's X25519 (the helper calls it
 * directly); otherwise every public key is computed here.
 */
export const AHEAD = 16;
/** Slots in the ring (a power of two): a slot is written again only once the helper is past it. */
const SLOTS = 64;
const SLOT_BYTES = 64; // secret (wiped once used) || public key
/**
 * Int32 counters at the start of the shared buffer (the slots follow them); ASLEEP: see topUp().
 * SUBMITTED and DONE count slots for the thread's lifetime and wrap at 2^32 like any Int32:
 * positions are compared by their difference (ahead()) and a slot is its position's low bits,
 * which 2^32 keeps in step.
 */
const SUBMITTED = 0;
const DONE = 1;
const ASLEEP = 2;
const CONTROL_BYTES = 12;

/** How far position `a` is past position `b` (negative: behind), across the counters' wrap. */
const ahead = (a: number, b: number): number => (a - b) | 0;
const slotAt = (position: number): number => (position & (SLOTS - 1)) * SLOT_BYTES;

interface Ring {
  control: Int32Array;
  slots: Uint8Array;
  /** Which run draws into the ring now (a number: the ring keeps no run alive). */
  owner: number;
  runs: number;
}

/** undefined: not started yet; null: no helper here (no native X25519, or it failed). */
let shared: Ring | null | undefined;
/** Where the counters start (tests start them just short of the wrap). */
let firstPosition = 0;

/** For tests only, before the ring exists: the position its counters start at. */
export function startRingAt(position: number): void {
  if (shared !== undefined) throw new Error('the ring has started already');
  firstPosition = position | 0;
}

function ring(): Ring | null {
  if (shared !== undefined) return shared;
  shared = null;
  if (nativeX25519 === undefined) return null;
  try {
    const buffer = new SharedArrayBuffer(CONTROL_BYTES + SLOTS * SLOT_BYTES);
    const control = new Int32Array(buffer, 0, 3);
    control[SUBMITTED] = control[DONE] = firstPosition;
    const worker = new Worker(new URL('./key-pairs-ahead-worker.mjs', import.meta.url), {
      workerData: { buffer, slots: SLOTS, slotBytes: SLOT_BYTES, controlBytes: CONTROL_BYTES },
      execArgv: [], // plain JavaScript: none of this process's loaders, a faster start
    });
    worker.unref(); // it waits on the ring forever: never what keeps the process alive
    const started: Ring = { control, slots: new Uint8Array(buffer, CONTROL_BYTES), owner: 0, runs: 0 };
    // A helper that died leaves its slots unfinished: the runs compute them, as without one,
    // and the secrets it had not reached are wiped.
    worker.on('error', () => {
      started.owner = 0;
      started.slots.fill(0);
      shared = null;
    });
    shared = started;
  } catch {
    shared = null;
  }
  return shared;
}

/** Pairs taken on this thread so far, by where their public key was made (for tests and benches). */
export const keyPairsTaken = { fromHelper: 0, madeHere: 0 };

class PairsAhead {
  /** Secrets drawn and not yet used, oldest first, with their ring position (null: not in it). */
  private readonly queue: { position: number | null; secret: Uint8Array }[] = [];
  private readonly run: number;

  constructor(
    private readonly provider: CryptoProvider,
    private readonly secrets: RandomSource,
    private readonly ring: Ring | null,
  ) {
    this.run = ring ? (ring.owner = ++ring.runs) : 0;
    this.topUp();
  }

  take(): KeyPair {
    const next = this.queue.shift() ?? { position: null, secret: this.secrets(32) };
    let publicKey = next.position === null ? undefined : this.finished(next.position);
    if (publicKey !== undefined) keyPairsTaken.fromHelper++;
    else {
      publicKey = this.provider.x25519PublicKey(next.secret);
      keyPairsTaken.madeHere++;
    }
    if (this.queue.length < AHEAD / 2) this.topUp();
    return { secretKey: next.secret, publicKey };
  }

  private owns(r: Ring | null): r is Ring {
    return r !== null && r.owner === this.run;
  }

  /** The helper's public key for ring position `position`, if it is done and the ring still ours. */
  private finished(position: number): Uint8Array | undefined {
    const r = this.ring;
    if (!this.owns(r) || ahead(Atomics.load(r.control, DONE), position) <= 0) return undefined;
    const at = slotAt(position) + 32;
    return r.slots.slice(at, at + 32);
  }

  /** Draws secrets up to AHEAD ahead into the ring, never into a slot the helper has not finished. */
  private topUp(): void {
    const r = this.ring;
    if (!this.owns(r)) return;
    const from = Atomics.load(r.control, SUBMITTED);
    let position = from;
    while (this.queue.length < AHEAD && ahead(position, Atomics.load(r.control, DONE)) < SLOTS) {
      const secret = this.secrets(32);
      r.slots.set(secret, slotAt(position));
      this.queue.push({ position, secret });
      position = (position + 1) | 0;
    }
    if (position === from) return;
    Atomics.store(r.control, SUBMITTED, position);
    // While runs go on the helper polls (a wake-up costs this thread ~20 us in a VM); idle, it
    // sleeps until told. It says so before it sleeps, and sleeps only while nothing is
    // submitted: one of the two sees the other's store.
    if (Atomics.load(r.control, ASLEEP) === 1) Atomics.notify(r.control, SUBMITTED);
  }
}

/**
 * `provider` with x25519KeyPair() (no secret given) taking its pairs, in order, from the stream
 * `secrets`; with `helper`, their public keys are made ahead on the helper thread. A pair for a
 * given secret, and every other operation, is the provider's own.
 */
export function withKeyPairsAhead(provider: CryptoProvider, secrets: RandomSource, helper: boolean): CryptoProvider {
  const pairs = new PairsAhead(provider, secrets, helper ? ring() : null);
  return withMethods(provider, {
    x25519KeyPair: (secretKey?: Uint8Array): KeyPair => (secretKey === undefined ? pairs.take() : provider.x25519KeyPair(secretKey)),
  });
}
