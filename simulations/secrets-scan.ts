/**
 * Looks for secrets in what crosses the simulated network or lands in the audit log: the
 * plaintext canaries every request carries, and registered key bytes (identity keys, ratchet
 * root and chain keys, KEKs, upstream credentials). Binary values travel as base64url, base64
 * or hex, so every long run of such characters is decoded and searched byte-wise; a secret is
 * found when KEY_PREFIX_BYTES of it appear anywhere.
 */
export const KEY_PREFIX_BYTES = 12;
/** Canaries look like this inside a plaintext; only ones registered in this run count. */
export const CANARY_PATTERN = /cnry-[0-9a-f]{16}/g;
const B64_RUN = /[A-Za-z0-9_\-+/]{16,}/g;
const HEX_ONLY = /^[0-9a-fA-F]+$/;
/** A bitmap over all 2-byte values (65,536 bits). */
const HEADS16_BYTES = 65536 / 8;

export class SecretScanner {
  private readonly canaries = new Set<string>();
  /** First 4 bytes (as a u32) -> the registered prefixes starting with them. */
  private readonly keys = new Map<number, { prefix: Uint8Array; label: string }[]>();
  /**
   * One bit per possible first 2 bytes of a registered prefix: most offsets of a scanned
   * payload are ruled out by this bit before the (much slower) map lookup. Same verdicts.
   */
  private readonly heads16 = new Uint8Array(HEADS16_BYTES);
  registered = 0;

  canary(text: string): void {
    this.canaries.add(text);
  }

  key(bytes: Uint8Array, label: string): void {
    if (bytes.length < KEY_PREFIX_BYTES) return;
    const prefix = bytes.slice(0, KEY_PREFIX_BYTES);
    const head = u32(prefix, 0);
    const list = this.keys.get(head) ?? [];
    if (list.some((e) => equalPrefix(e.prefix, prefix, 0))) return;
    list.push({ prefix, label });
    const h16 = head >>> 16;
    this.heads16[h16 >>> 3]! |= 1 << (h16 & 7);
    this.keys.set(head, list);
    this.registered++;
  }

  /** The label of the first secret found in `text`, or null. */
  scan(text: string): string | null {
    for (const m of text.matchAll(CANARY_PATTERN)) if (this.canaries.has(m[0])) return `plaintext canary ${m[0]}`;
    if (this.keys.size === 0) return null;
    for (const m of text.matchAll(B64_RUN)) {
      const run = m[0];
      // Node's base64 decoder reads both alphabets; a hex run is also tried as hex.
      let hit = this.scanBytes(Buffer.from(run.length % 4 === 1 ? run.slice(0, -1) : run, 'base64'));
      if (!hit && run.length >= 2 * KEY_PREFIX_BYTES && HEX_ONLY.test(run)) {
        hit = this.scanBytes(Buffer.from(run.length % 2 ? run.slice(0, -1) : run, 'hex'));
      }
      if (hit) return hit;
    }
    return null;
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
