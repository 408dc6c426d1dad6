import type { CryptoProvider } from '../crypto/provider.ts';
import type { AuditStore, AppendResult, StoredCheckpoint } from '../store/audit-store.ts';
import { AuditError } from './errors.ts';
import { type Hasher } from './merkle.ts';
import { consistencyPlan, foldRight, inclusionPlan, nodeKey, rangeNodes, type NodeRef, type ProofPlan } from './tree.ts';
import { signCheckpoint, type LogKey, type SignedCheckpoint } from './checkpoint.ts';
import { leafBytes, type AuditEvent } from './event.ts';

/**
 * The log as the rest of Talos sees it: appends events to an AuditStore, serves RFC 9162
 * proofs from the stored complete nodes, and signs checkpoints. Complete nodes never change,
 * so the upper levels are cached in memory: a proof then reads only its few lowest nodes.
 */
/** Nodes at this level or above are cached (each covers at least 16 leaves). */
export const CACHE_MIN_LEVEL = 4;
/** Bound on cached nodes (~32 bytes each plus map overhead); the cache is cleared when full. */
export const MAX_CACHED_NODES = 1 << 18;

/** Bound on cached right-edge folds (hashes of incomplete ranges [lo, hi), fixed once hi <= size). */
export const MAX_CACHED_FOLDS = 4096;

export class AuditLog {
  /** cache[level]: index -> hash of that complete node (levels >= CACHE_MIN_LEVEL only). */
  private readonly cache: Map<number, Uint8Array>[] = [];
  private cached = 0;
  private readonly folds = new Map<string, Uint8Array>();
  /** The head only grows: sizes at or below the last one seen need no store read. */
  private knownSize = 0;

  constructor(
    readonly store: AuditStore,
    readonly hasher: Hasher,
  ) {}

  async appendEvents(events: AuditEvent[]): Promise<AppendResult> {
    return this.store.append(events.map(leafBytes));
  }

  private cacheGet(r: NodeRef): Uint8Array | undefined {
    return r.level >= CACHE_MIN_LEVEL ? this.cache[r.level]?.get(r.index) : undefined;
  }

  private cachePut(r: NodeRef, h: Uint8Array): void {
    if (r.level < CACHE_MIN_LEVEL) return;
    if (this.cached >= MAX_CACHED_NODES) {
      this.cache.length = 0;
      this.cached = 0;
    }
    let level = this.cache[r.level];
    if (!level) this.cache[r.level] = level = new Map();
    if (!level.has(r.index)) this.cached++;
    level.set(r.index, h);
  }

  /** Reads the refs not cached from the store (in order, once each), caching what may be. */
  private async fetchMissing(refs: NodeRef[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    if (refs.length === 0) return out;
    const got = await this.store.getNodes(refs);
    for (const r of refs) {
      const k = nodeKey(r.level, r.index);
      const h = got.get(k);
      if (!h) throw new AuditError('store_corrupt', `missing tree node ${r.level}/${r.index}`);
      out.set(k, h);
      this.cachePut(r, h);
    }
    return out;
  }

  private async fetch(refs: NodeRef[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    const missing: NodeRef[] = [];
    for (const r of refs) {
      const h = this.cacheGet(r);
      if (h) out.set(nodeKey(r.level, r.index), h);
      else missing.push(r);
    }
    for (const [k, h] of await this.fetchMissing(missing)) out.set(k, h);
    return out;
  }

  private async build(plan: ProofPlan): Promise<Uint8Array[]> {
    // Multi-node groups are folds over an incomplete range on the right edge; each one's hash
    // is cached (the same few ranges recur in every proof against one tree size).
    const out: (Uint8Array | undefined)[] = new Array(plan.length);
    const foldKeys: string[] = [];
    const missing: NodeRef[] = [];
    const seen = new Set<string>();
    // Cached members of fold groups are kept here: fetching may clear the cache when it is full.
    const held = new Map<string, Uint8Array>();
    const need = (r: NodeRef) => {
      const k = nodeKey(r.level, r.index);
      const c = this.cacheGet(r);
      if (c) held.set(k, c);
      if (c || seen.has(k)) return;
      seen.add(k);
      missing.push(r);
    };
    for (let i = 0; i < plan.length; i++) {
      const g = plan[i]!;
      if (g.length === 1) {
        const h = this.cacheGet(g[0]!);
        if (h) out[i] = h;
        else need(g[0]!);
        continue;
      }
      const k = `${g[0]!.level}:${g[0]!.index}:${g.length}:${g[g.length - 1]!.level}:${g[g.length - 1]!.index}`;
      foldKeys[i] = k;
      const h = this.folds.get(k);
      if (h) out[i] = h;
      else for (const r of g) need(r);
    }
    const fetched = await this.fetchMissing(missing);
    const node = (r: NodeRef) => {
      const k = nodeKey(r.level, r.index);
      return held.get(k) ?? fetched.get(k)!;
    };
    for (let i = 0; i < plan.length; i++) {
      if (out[i]) continue;
      const g = plan[i]!;
      if (g.length === 1) {
        out[i] = node(g[0]!);
        continue;
      }
      const h = foldRight(this.hasher, g.map(node));
      if (this.folds.size >= MAX_CACHED_FOLDS) this.folds.clear();
      this.folds.set(foldKeys[i]!, h);
      out[i] = h;
    }
    return out as Uint8Array[];
  }

  private async checkSize(size: number): Promise<void> {
    if (size <= this.knownSize) return;
    const head = await this.store.head();
    this.knownSize = head.size;
    if (size > head.size) throw new AuditError('bad_size', `the log has ${head.size} leaves`);
  }

  /** Inclusion proof of leaf `index` in the tree of `size` leaves (default: the current head). */
  async inclusionProof(index: number, size?: number): Promise<Uint8Array[]> {
    const n = size ?? (await this.store.head()).size;
    if (size !== undefined) await this.checkSize(size);
    return this.build(inclusionPlan(index, n));
  }

  async consistencyProof(oldSize: number, newSize: number): Promise<Uint8Array[]> {
    await this.checkSize(newSize);
    return this.build(consistencyPlan(oldSize, newSize));
  }

  /** The root of the tree of `size` leaves, from stored nodes. */
  async rootAt(size: number): Promise<Uint8Array> {
    await this.checkSize(size);
    if (size === 0) return this.hasher.emptyRoot();
    const refs = rangeNodes(0, size);
    const nodes = await this.fetch(refs);
    return foldRight(this.hasher, refs.map((r) => nodes.get(nodeKey(r.level, r.index))!));
  }

  /** Signs the current head and stores the checkpoint. */
  async checkpoint(crypto: CryptoProvider, key: LogKey): Promise<SignedCheckpoint> {
    const head = await this.store.head();
    const cp = signCheckpoint(crypto, key, head);
    await this.store.putCheckpoint({ size: cp.size, note: cp.note });
    return cp;
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    return this.store.latestCheckpoint();
  }
}
