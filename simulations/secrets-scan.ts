import { addon } from '../runtime/crypto/native-addon.ts';

/**
 * Looks for secrets in what crosses the simulated network or lands in the audit log: the
 * plaintext canaries every request carries, and registered key bytes (identity keys, ratchet
 * root and chain keys, KEKs, upstream credentials). Binary values travel as base64url, base64
 * or hex, so every long run of such characters is decoded and searched byte-wise, for key
 * bytes and for canaries; a key is found when KEY_PREFIX_BYTES of it appear anywhere.
 * A run is decoded from its first character: an encoding glued to other run characters (a
 * `sk_` or `0x` prefix, say) decodes out of step and is not seen. Talos writes every binary
 * field as a JSON string of its own, where the run and the encoding start together.
 * The native addon, when built, applies the same rules first (runtime/crypto/native/
 * secret-filter.c) and rules out most texts; the reading here gives every verdict it cannot.
 */
export const KEY_PREFIX_BYTES = 12;
/**
 * Canaries look like this inside a plaintext (`cnry-` and 16 lower-case hex digits, as the
 * regex /cnry-[0-9a-f]{16}/ would match them); only ones registered in this run count.
 */
export const CANARY_PREFIX = 'cnry-';
export const CANARY_HEX_DIGITS = 16;
/** Shortest run of base64 / base64url / hex characters worth decoding. */
const MIN_RUN = 16;
/** 1 for the characters a run is made of (both base64 alphabets; hex is a subset). */
const RUN_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-+/') RUN_CHAR[c.charCodeAt(0)] = 1;
const CANARY_BYTES = Buffer.from(CANARY_PREFIX, 'latin1');
const HEX_ONLY = /^[0-9a-fA-F]+$/;
/** A bitmap over all 2-byte values (65,536 bits). */
const HEADS16_BYTES = 65536 / 8;
/** The native addon's first look at a text (runtime/crypto/native/secret-filter.c), when built. */
const mayHoldSecret = addon?.mayHoldSecret;
/** First size of the table of 4-byte heads the native filter reads (slots; doubled past half full). */
const HEADS32_SLOTS = 1024;

export class SecretScanner {
  private readonly canaries = new Set<string>();
  /** First 4 bytes (as a u32) -> the registered prefixes starting with them. */
  private readonly keys = new Map<number, { prefix: Uint8Array; label: string }[]>();
  /**
   * One bit per possible first 2 bytes of a registered prefix: most offsets of a scanned
   * payload are ruled out by this bit before the (much slower) map lookup. Same verdicts.
   */
  private readonly heads16 = new Uint8Array(HEADS16_BYTES);
  /**
   * The same 4-byte heads as `keys`, in an open-addressing table (multiplicative hash, linear
   * probing; a power of two of slots, at most half used) for the native filter, which cannot
   * read a Map.
   */
  private heads32 = new Uint32Array(HEADS32_SLOTS);
  /** The table's bytes, as the native filter reads them. */
  private heads32Bytes = new Uint8Array(this.heads32.buffer);
  private heads32Used = new Uint8Array(HEADS32_SLOTS);
  private heads32Count = 0;
  registered = 0;
  /** The native filter, unless turned off (tests compare both ways). */
  private readonly nativeFilter: typeof mayHoldSecret;
  /** Decoding scratch, reused for every run (grown as needed): no buffer per run. */
  private scratch = Buffer.alloc(4096);

  constructor(options: { nativeFilter?: boolean } = {}) {
    this.nativeFilter = options.nativeFilter === false ? undefined : mayHoldSecret;
  }

  canary(text: string): void {
    this.canaries.add(text);
  }

  key(bytes: Uint8Array, label: string): void {
    if (bytes.length < KEY_PREFIX_BYTES) return;
    // About half the calls name a key already known (a state registered again as it is saved): no copy for those.
    const head = u32(bytes, 0);
    const list = this.keys.get(head) ?? [];
    for (const e of list) if (equalPrefix(e.prefix, bytes, 0)) return;
    list.push({ prefix: bytes.slice(0, KEY_PREFIX_BYTES), label });
    const h16 = head >>> 16;
    this.heads16[h16 >>> 3]! |= 1 << (h16 & 7);
    if (list.length === 1) this.addHead(head);
    this.keys.set(head, list);
    this.registered++;
  }

  private addHead(head: number): void {
    if (2 * (this.heads32Count + 1) > this.heads32.length) {
      const old = this.heads32.filter((_, i) => this.heads32Used[i] === 1);
      this.heads32 = new Uint32Array(2 * this.heads32.length);
      this.heads32Bytes = new Uint8Array(this.heads32.buffer);
      this.heads32Used = new Uint8Array(this.heads32.length);
      this.heads32Count = 0;
      for (const h of old) this.addHead(h);
    }
    const mask = this.heads32.length - 1;
    // The top log2(slots) bits of the product, as secret-filter.c's has_head().
    let i = Math.imul(head, 0x9e3779b1) >>> (Math.clz32(this.heads32.length) + 1);
    while (this.heads32Used[i] === 1) i = (i + 1) & mask;
    this.heads32[i] = head;
    this.heads32Used[i] = 1;
    this.heads32Count++;
  }

  /** The label of the first secret found in `text`, or null. */
  scan(text: string): string | null {
    const canary = this.findCanary(text);
    if (canary) return `plaintext canary ${canary}`;
    if (this.keys.size === 0 && this.canaries.size === 0) return null;
    // Most texts hold nothing: the native filter says so at a fraction of the cost of the
    // reading below, which gives the same verdict (and the label) when it says maybe.
    if (this.nativeFilter && !this.nativeFilter(text, this.heads16, this.heads32Bytes, this.heads32Used, this.canaries.size > 0)) return null;
    // Every maximal run of at least MIN_RUN run characters: the runs /[A-Za-z0-9_\-+/]{16,}/g
    // would match, found by a character-table loop (cheaper than the regex, no match objects).
    let start = -1;
    for (let i = 0; i <= text.length; i++) {
      const c = i < text.length ? text.charCodeAt(i) : 0;
      if (c < 128 && RUN_CHAR[c] === 1) {
        if (start < 0) start = i;
        continue;
      }
      if (start >= 0 && i - start >= MIN_RUN) {
        const hit = this.scanRun(text.slice(start, i));
        if (hit) return hit;
      }
      start = -1;
    }
    return null;
  }

  /**
   * The first registered canary in `text`, found exactly as a global regex would walk it (a
   * match resumes the search after its end), with indexOf and no match objects.
   */
  private findCanary(text: string): string | null {
    if (this.canaries.size === 0) return null;
    const length = CANARY_PREFIX.length + CANARY_HEX_DIGITS;
    let at = text.indexOf(CANARY_PREFIX);
    while (at >= 0 && at + length <= text.length) {
      let hex = true;
      for (let i = at + CANARY_PREFIX.length; hex && i < at + length; i++) {
        const c = text.charCodeAt(i);
        hex = (c >= 48 && c <= 57) || (c >= 97 && c <= 102); // 0-9, a-f
      }
      if (hex) {
        const match = text.slice(at, at + length);
        if (this.canaries.has(match)) return match;
      }
      at = text.indexOf(CANARY_PREFIX, hex ? at + length : at + 1);
    }
    return null;
  }

  /** One run: decoded as base64 (Node reads both alphabets), and a hex run also as hex. */
  private scanRun(run: string): string | null {
    const hit = this.scanDecoded(run.length % 4 === 1 ? run.slice(0, -1) : run, 'base64');
    if (hit || run.length < 2 * KEY_PREFIX_BYTES || !HEX_ONLY.test(run)) return hit;
    return this.scanDecoded(run.length % 2 ? run.slice(0, -1) : run, 'hex');
  }

  private scanDecoded(text: string, encoding: 'base64' | 'hex'): string | null {
    // base64 decodes to at most 3/4 of its length, hex to 1/2.
    if (this.scratch.length < text.length) this.scratch = Buffer.alloc(2 * text.length);
    const n = this.scratch.write(text, encoding);
    const decoded = this.scratch.subarray(0, n);
    // Plaintext that travels encoded (a frame whose `ct` is not really encrypted) shows its
    // canaries only once decoded.
    const canary = this.canaries.size > 0 && decoded.includes(CANARY_BYTES) ? this.findCanary(decoded.toString('latin1')) : null;
    if (canary) return `plaintext canary ${canary} (${encoding}-encoded)`;
    return this.scanBytes(decoded);
  }

  scanBytes(bytes: Uint8Array): string | null {
    const heads16 = this.heads16;
    for (let i = 0; i + KEY_PREFIX_BYTES <= bytes.length; i++) {
      const h16 = (bytes[i]! << 8) | bytes[i + 1]!;
      if ((heads16[h16 >>> 3]! & (1 << (h16 & 7))) === 0) continue;
      const list = this.keys.get(u32(bytes, i));
      if (!list) continue;
      for (const e of list) if (equalPrefix(e.prefix, bytes, i)) return `key bytes (${e.label})`;
    }
    return null;
  }
}

function u32(b: Uint8Array, i: number): number {
  return ((b[i]! << 24) | (b[i + 1]! << 16) | (b[i + 2]! << 8) | b[i + 3]!) >>> 0;
}

function equalPrefix(prefix: Uint8Array, bytes: Uint8Array, at: number): boolean {
  for (let j = 0; j < prefix.length; j++) if (prefix[j] !== bytes[at + j]) return false;
  return true;
}
