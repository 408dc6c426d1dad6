// Wiping what Node's shared Buffer pool was handed during a synchronous call. Node's JWK key
// import decodes the private key's `d` with Buffer.from(d, 'base64'), into that pool, and leaves
// the bytes there (Node 20, lib/internal/crypto/keys.js); the pool hands memory out again only
// later, so without this a secret stays in the process until overwritten. Used by
// runtime/crypto/node.ts and the X25519 key-pair worker (plain JavaScript, so both can import it).
// Tests (providers.test.ts, x25519-pool.test.ts) look for a copy left in the pool: a Node that
// allocates differently fails them instead of leaving secrets unnoticed.

/**
 * Runs `fn` (synchronous), then zeroes the pool bytes handed out while it ran: between a 1-byte
 * allocation before and one after. Nothing else runs meanwhile, so those bytes are fn's garbage.
 * @template T
 * @param {() => T} fn
 * @returns {T}
 */
export function wipingPoolAllocations(fn) {
  const mark = Buffer.allocUnsafe(1);
  try {
    return fn();
  } finally {
    const end = Buffer.allocUnsafe(1);
    const from = mark.byteOffset + 1;
    if (end.buffer === mark.buffer) {
      new Uint8Array(end.buffer, from, end.byteOffset - from).fill(0);
    } else {
      // The pool moved to a new slab meanwhile: the old one's tail after the mark was handed out
      // only to fn (or never), and the new one holds only fn's allocations before `end`.
      new Uint8Array(mark.buffer, from).fill(0);
      new Uint8Array(end.buffer, 0, end.byteOffset).fill(0);
    }
  }
}
