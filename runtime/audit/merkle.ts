import { AuditError } from './errors.ts';
import { bytesEqual } from '../encoding/bytes.ts';

/**
 * RFC 9162 section 2.1 Merkle tree hashing and proof verification. Sizes and indexes are plain
 * numbers up to 2^53 - 1: every step uses arithmetic (/ 2, % 2), never 32-bit bit operators.
 */
export type Sha256 = (data: Uint8Array) => Uint8Array;

export const HASH_SIZE = 32;
/** Largest tree size and leaf index we handle (exact in a JS number). */
export const MAX_TREE_SIZE = Number.MAX_SAFE_INTEGER;
/** A proof longer than this cannot belong to any tree of at most MAX_TREE_SIZE leaves. */
export const MAX_PROOF_LENGTH = 2 * 53;

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

export interface Hasher {
  sha256: Sha256;
  emptyRoot(): Uint8Array;
  hashLeaf(leaf: Uint8Array): Uint8Array;
  hashChildren(left: Uint8Array, right: Uint8Array): Uint8Array;
}

/** Leaves up to this size are prefixed in a buffer the hasher reuses (larger ones get their own). */
const LEAF_SCRATCH_BYTES = 4096;

export function createHasher(sha256: Sha256): Hasher {
  const node = new Uint8Array(1 + 2 * HASH_SIZE);
  node[0] = NODE_PREFIX;
  // Reused like `node`: sha256 is synchronous and only reads its input, and a fresh buffer per
  // leaf would be one more off-heap allocation per audit event (the young GC sweeps each one).
  const leafScratch = new Uint8Array(1 + LEAF_SCRATCH_BYTES);
  leafScratch[0] = LEAF_PREFIX;
  return {
    sha256,
    emptyRoot: () => sha256(new Uint8Array(0)),
    hashLeaf(leaf) {
      if (leaf.length <= LEAF_SCRATCH_BYTES) {
        leafScratch.set(leaf, 1);
        return sha256(leafScratch.subarray(0, 1 + leaf.length));
      }
      const buf = new Uint8Array(1 + leaf.length);
      buf[0] = LEAF_PREFIX;
      buf.set(leaf, 1);
      return sha256(buf);
    },
    hashChildren(left, right) {
      if (left.length !== HASH_SIZE || right.length !== HASH_SIZE) throw new AuditError('bad_hash', 'node hashes are 32 bytes');
      node.set(left, 1);
      node.set(right, 1 + HASH_SIZE);
      return sha256(node);
    },
  };
}

export function isSize(n: unknown): n is number {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
}

/** Largest power of two strictly less than n (n >= 2). */
export function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

export function isPowerOfTwo(n: number): boolean {
  if (n < 1) return false;
  while (n % 2 === 0) n /= 2;
  return n === 1;
}

/** MTH over a list of leaf hashes, straight from the RFC's recursive definition (reference, tests). */
export function rootOfLeafHashes(hasher: Hasher, leafHashes: Uint8Array[]): Uint8Array {
  const rec = (lo: number, hi: number): Uint8Array => {
    if (hi - lo === 1) return leafHashes[lo]!;
    const k = splitPoint(hi - lo);
    return hasher.hashChildren(rec(lo, lo + k), rec(lo + k, hi));
  };
  return leafHashes.length === 0 ? hasher.emptyRoot() : rec(0, leafHashes.length);
}

function checkHashes(proof: readonly Uint8Array[]): void {
  if (!Array.isArray(proof) || proof.length > MAX_PROOF_LENGTH) throw new AuditError('bad_proof', 'proof is too long');
  for (const h of proof) {
    if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) throw new AuditError('bad_proof', 'proof hashes are 32 bytes');
  }
}

/**
 * RFC 9162 2.1.3.2: the root implied by an inclusion proof, or an AuditError('bad_proof').
 */
export function rootFromInclusionProof(
  hasher: Hasher,
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
): Uint8Array {
  if (!isSize(size) || !isSize(index) || index >= size) throw new AuditError('bad_index', 'leaf index is not below the tree size');
  if (leafHash.length !== HASH_SIZE) throw new AuditError('bad_hash', 'leaf hash is 32 bytes');
  checkHashes(proof);
  let fn = index;
  let sn = size - 1;
  let r = leafHash;
  for (const p of proof) {
    if (sn === 0) throw new AuditError('bad_proof', 'inclusion proof is too long');
    if (fn % 2 === 1 || fn === sn) {
      r = hasher.hashChildren(p, r);
      // Skip the levels where this node is a left edge with no right sibling.
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      r = hasher.hashChildren(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new AuditError('bad_proof', 'inclusion proof is too short');
  return r;
}

export function verifyInclusion(
  hasher: Hasher,
  index: number,
  size: number,
  leafHash: Uint8Array,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  try {
    return bytesEqual(rootFromInclusionProof(hasher, index, size, leafHash, proof), root);
  } catch (e) {
    if (e instanceof AuditError) return false;
    throw e;
  }
}

/**
 * RFC 9162 2.1.4.2, with PROTOCOL.md section 8's edge rules: between equal sizes the proof is
 * empty and the roots are equal; from size 0 the proof is empty (and the old root must be the
 * empty-tree hash, the only root a size-0 tree has).
 */
export function verifyConsistency(
  hasher: Hasher,
  oldSize: number,
  newSize: number,
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
  proof: readonly Uint8Array[],
): boolean {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize > newSize) return false;
  if (oldRoot.length !== HASH_SIZE || newRoot.length !== HASH_SIZE) return false;
  if (oldSize === 0) return Array.isArray(proof) && proof.length === 0 && bytesEqual(oldRoot, hasher.emptyRoot());
  if (oldSize === newSize) return Array.isArray(proof) && proof.length === 0 && bytesEqual(oldRoot, newRoot);
  const roots = rootsFromConsistencyProof(hasher, oldSize, newSize, oldRoot, proof);
  return roots !== null && bytesEqual(roots.oldRoot, oldRoot) && bytesEqual(roots.newRoot, newRoot);
}

/**
 * The (old, new) roots a consistency proof implies for 0 < oldSize < newSize, or null when the
 * proof has the wrong shape. When oldSize is a power of two the RFC proof omits the old root
 * (it is the proof's implicit first node), so the caller's `oldRootHint` seeds both sides.
 * A proof that reproduces a signed new root but not the signed old root is evidence of a fork.
 */
export function rootsFromConsistencyProof(
  hasher: Hasher,
  oldSize: number,
  newSize: number,
  oldRootHint: Uint8Array,
  proof: readonly Uint8Array[],
): { oldRoot: Uint8Array; newRoot: Uint8Array } | null {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize === 0 || oldSize >= newSize) return null;
  if (!Array.isArray(proof) || proof.length === 0 || proof.length > MAX_PROOF_LENGTH) return null;
  for (const h of proof) if (!(h instanceof Uint8Array) || h.length !== HASH_SIZE) return null;
  const path = isPowerOfTwo(oldSize) ? [oldRootHint, ...proof] : [...proof];
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  let fr = path[0]!;
  let sr = path[0]!;
  for (let i = 1; i < path.length; i++) {
    const c = path[i]!;
    if (sn === 0) return null;
    if (fn % 2 === 1 || fn === sn) {
      fr = hasher.hashChildren(c, fr);
      sr = hasher.hashChildren(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn /= 2;
          sn = Math.floor(sn / 2);
        }
      }
    } else {
      sr = hasher.hashChildren(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) return null;
  return { oldRoot: fr, newRoot: sr };
}
