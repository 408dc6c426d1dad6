import { AuditError } from '../audit/errors.ts';
import { HASH_SIZE, type Hasher } from '../audit/merkle.ts';
import { Frontier, rangeNodes, type Node, type NodeRef } from '../audit/tree.ts';
import { bytesEqual } from '../encoding/bytes.ts';

/**
 * The AuditStore port: where the Merkle log lives. Adapters: SQLite (embedded default,
 * audit-sqlite.ts) and PostgreSQL (shared by several gateways, audit-postgres.ts); one contract
 * suite (audit-store.contract.ts) runs against both.
 *
 * Contract:
 *  - append(leaves) assigns consecutive indexes in order and is atomic: the whole batch (events,
 *    every node it completes, the new head) is committed, or nothing is. It resolves only once
 *    the batch is durable; an acknowledged append survives a killed process.
 *  - Concurrent appenders (several processes) never get overlapping indexes.
 *  - Complete-subtree nodes never change once written, so proofs can be served from them and
 *    cached forever; the head row holds the O(log n) frontier the next append continues from.
 */
export interface AppendResult {
  /** Index assigned to the first leaf of the batch. */
  first: number;
  /** Tree size after the batch. */
  size: number;
  root: Uint8Array;
  leafHashes: Uint8Array[];
}

export interface StoredLeaf {
  index: number;
  leaf: Uint8Array;
}

export interface StoredCheckpoint {
  size: number;
  note: string;
}

export interface Head {
  size: number;
  root: Uint8Array;
}

export interface AuditStore {
  readonly kind: 'sqlite' | 'postgres';
  /**
   * `leafHashes`: the leaves' hashes (SHA-256(0x00 || leaf)) when the caller computed them
   * already (the auditor, on its worker pool for large batches); else the store hashes.
   */
  append(leaves: Uint8Array[], leafHashes?: readonly Uint8Array[]): Promise<AppendResult>;
  head(): Promise<Head>;
  /** The stored frontier appends continue from (null when nothing is stored yet), for verify. */
  storedFrontier(): Promise<Uint8Array | null>;
  /** The requested complete nodes, keyed by nodeKey; missing ones are absent. */
  getNodes(refs: NodeRef[]): Promise<Map<string, Uint8Array>>;
  /**
   * Optional fast path of getNodes for proof generation: the same nodes as a list in the order
   * of `refs`, null where a node is missing (no key strings, no map).
   */
  getNodeList?(refs: NodeRef[]): Promise<(Uint8Array | null)[]>;
  /** Up to `limit` stored leaves with index >= from, in index order (a page of a stream). */
  readLeaves(from: number, limit: number): Promise<StoredLeaf[]>;
  readLeaf(index: number): Promise<Uint8Array | null>;
  putCheckpoint(cp: StoredCheckpoint): Promise<void>;
  latestCheckpoint(): Promise<StoredCheckpoint | null>;
  /** Stored checkpoints with size >= fromSize, ordered by size then insertion. */
  listCheckpoints(fromSize: number, limit: number): Promise<StoredCheckpoint[]>;
  /** Bytes the store occupies (for the light client vs full log comparison). */
  byteSize(): Promise<number>;
  close(): Promise<void>;
}

/** Limits enforced by every adapter. */
export const MAX_BATCH_LEAVES = 10_000;
export const MAX_LEAF_BYTES_STORED = 64 * 1024;
export const MAX_PAGE = 10_000;

export function checkBatch(leaves: Uint8Array[], leafHashes?: readonly Uint8Array[]): void {
  if (!Array.isArray(leaves) || leaves.length === 0) throw new AuditError('bad_batch', 'a batch holds at least one leaf');
  if (leaves.length > MAX_BATCH_LEAVES) throw new AuditError('bad_batch', `a batch holds at most ${MAX_BATCH_LEAVES} leaves`);
  for (const l of leaves) {
    if (!(l instanceof Uint8Array) || l.length > MAX_LEAF_BYTES_STORED) throw new AuditError('bad_batch', 'leaf is not bytes or too large');
  }
  if (leafHashes === undefined) return;
  if (!Array.isArray(leafHashes) || leafHashes.length !== leaves.length || leafHashes.some((h) => !(h instanceof Uint8Array) || h.length !== HASH_SIZE)) {
    throw new AuditError('bad_batch', 'leaf hashes must be one 32-byte hash per leaf');
  }
}

export function checkPage(from: number, limit: number): void {
  if (!Number.isSafeInteger(from) || from < 0 || !Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE) {
    throw new AuditError('bad_page', `page is from >= 0, 1 <= limit <= ${MAX_PAGE}`);
  }
}

/** Head row encoding: the frontier's hashes concatenated (their levels follow from the size). */
export function encodeFrontier(f: Frontier): Uint8Array {
  const nodes = f.nodes();
  const out = new Uint8Array(nodes.length * HASH_SIZE);
  nodes.forEach((n, i) => out.set(n.hash, i * HASH_SIZE));
  return out;
}

function decodeFrontier(hasher: Hasher, size: number, blob: Uint8Array): Frontier {
  const refs = rangeNodes(0, size);
  if (blob.length !== refs.length * HASH_SIZE) throw new AuditError('store_corrupt', 'head frontier does not match the tree size');
  return Frontier.fromNodes(
    hasher,
    size,
    refs.map((r, i) => ({ ...r, hash: blob.slice(i * HASH_SIZE, (i + 1) * HASH_SIZE) })),
  );
}

/**
 * The frontier an append continues from. Its root must equal the stored head root: a frontier
 * changed behind the root's back would make every later checkpoint sign a root that is not
 * the hash tree of the events, so the append is refused (nothing written) instead.
 */
export function decodeHeadFrontier(hasher: Hasher, size: number, blob: Uint8Array, root: Uint8Array): Frontier {
  const f = decodeFrontier(hasher, size, blob);
  if (!bytesEqual(f.root(), root)) throw new AuditError('store_corrupt', 'the stored head frontier does not match the head root; run `talos audit verify`');
  return f;
}

/** The pure part of an append: hashes the batch onto the frontier, returning what to write. */
export function hashBatch(hasher: Hasher, frontier: Frontier, leaves: Uint8Array[], precomputed?: readonly Uint8Array[]): { nodes: Node[]; leafHashes: Uint8Array[] } {
  const nodes: Node[] = [];
  const leafHashes: Uint8Array[] = [];
  for (let i = 0; i < leaves.length; i++) {
    const h = precomputed?.[i] ?? hasher.hashLeaf(leaves[i]!);
    leafHashes.push(h);
    frontier.append(h, nodes);
  }
  return { nodes, leafHashes };
}

export const toBytes = (b: Buffer | Uint8Array): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength).slice();
