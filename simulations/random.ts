import { seededRandom } from '../runtime/crypto/seeded-random.ts';
import type { RandomSource } from '../runtime/crypto/provider.ts';

/**
 * The simulator's one source of chance. Every random choice of a run (latencies, drops, which
 * agent calls which tool, when a fault strikes, and the crypto provider's bytes) comes from a
 * stream forked off the run's seed, so the same seed replays the same run exactly.
 *
 * The generator is sfc32 (Chris Doty-Humphrey's Small Fast Chaotic PRNG, 128-bit state): fast,
 * no multiplications, good statistical quality for simulation (not for keys). Forks are keyed
 * by label, so adding a new consumer never shifts the numbers an existing consumer sees.
 */
export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(
    readonly seed: number,
    readonly label = 'root',
  ) {
    const h = hash32s(`${seed}:${label}`);
    this.a = h[0]!;
    this.b = h[1]!;
    this.c = h[2]!;
    this.d = 1;
    // Discard the first outputs: sfc32 mixes its seed over a dozen rounds.
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform unsigned 32-bit integer. */
  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** Uniform integer in [0, n), n >= 1 (rejection sampling: no modulo bias). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 0x100000000) throw new RangeError('int(n) needs an integer 1..2^32');
    const limit = 0x100000000 - (0x100000000 % n);
    for (;;) {
      const x = this.u32();
      if (x < limit) return x % n;
    }
  }

  /** Uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  chance(p: number): boolean {
    return p > 0 && this.float() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[this.int(items.length)]!;
  }

  /** Exponentially distributed with the given mean (for jitter and inter-arrival times). */
  exponential(mean: number): number {
    return -Math.log(1 - this.float()) * mean;
  }

  /** A new independent stream, derived from this run's seed and the label only. */
  fork(label: string): Rng {
    return new Rng(this.seed, `${this.label}/${label}`);
  }

  /** A byte source for the crypto provider (ChaCha20 keystream), also derived from the seed. */
  randomSource(label: string): RandomSource {
    return seededRandom(`sim:${this.seed}:${this.label}/${label}`);
  }

  /** Lower-case hex of n random bytes (ids, canaries). */
  hex(bytes: number): string {
    let s = '';
    for (let i = 0; i < bytes; i++) s += (this.u32() & 0xff).toString(16).padStart(2, '0');
    return s;
  }
}

/** Three 32-bit words from a string (cyrb128-style mixing): the sfc32 seed state. */
function hash32s(text: string): number[] {
  let h1 = 1779033703;
  let h2 = 3144134277;
  let h3 = 1013904242;
  for (let i = 0; i < text.length; i++) {
    const k = text.charCodeAt(i);
    h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
    h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
    h3 = h1 ^ Math.imul(h3 ^ k, 951274213);
  }
  h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
  h2 = Math.imul(h1 ^ (h2 >>> 22), 2869860233);
  h3 = Math.imul(h2 ^ (h3 >>> 17), 951274213);
  return [(h1 ^ h2 ^ h3) >>> 0, (h2 ^ h1) >>> 0, (h3 ^ h1) >>> 0];
}
