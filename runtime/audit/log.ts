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
/** Nodes at this level or above are cached (each covers at least 8 leaves). */
export const CACHE_MIN_LEVEL = 3;
/**
 * Bound on cached nodes (~32 bytes each plus map overhead). When full, the lowest cached level
 * is dropped: it is the largest and the cheapest to miss (upper levels serve every proof).
 */
export const MAX_CACHED_NODES = 1 << 18;

/** Bound on cached right-edge folds (hashes of incomplete ranges [lo, hi), fixed once hi <= size). */
export const MAX_CACHED_FOLDS = 4096;

/** Slot encoding in build(): a group's members are fewer than this (a group is O(log n) nodes). */
const SLOT = 1 << 16;

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

  private dropLowestLevel(): void {
    const lowest = this.cache.findIndex((m) => m !== undefined && m.size > 0);
    if (lowest < 0) return;
    this.cached -= this.cache[lowest]!.size;
    this.cache[lowest]!.clear();
  }

  private cachePut(r: NodeRef, h: Uint8Array): void {
    if (r.level < CACHE_MIN_LEVEL) return;
    if (this.cached >= MAX_CACHED_NODES) this.dropLowestLevel();
    let level = this.cache[r.level];
    if (!level) this.cache[r.level] = level = new Map();
    if (!level.has(r.index)) this.cached++;
    level.set(r.index, h);
  }

  /** Reads refs from the store, in order, caching what may be; a missing node is corruption. */
  private async fetchList(refs: NodeRef[]): Promise<Uint8Array[]> {
    if (refs.length === 0) return [];
    let got: (Uint8Array | null | undefined)[];
    if (this.store.getNodeList) got = await this.store.getNodeList(refs);
    else {
      const map = await this.store.getNodes(refs);
      got = refs.map((r) => map.get(nodeKey(r.level, r.index)));
    }
    const out: Uint8Array[] = [];
    for (let i = 0; i < refs.length; i++) {
      const r = refs[i]!;
      const h = got[i];
      if (!h) throw new AuditError('store_corrupt', `missing tree node ${r.level}/${r.index}`);
      out.push(h);
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
    const got = await this.fetchList(missing);
    missing.forEach((r, i) => out.set(nodeKey(r.level, r.index), got[i]!));
    return out;
  }

  private async build(plan: ProofPlan): Promise<Uint8Array[]> {
    // Multi-node groups are folds over an incomplete range on the right edge; each one's hash
    // is cached (the same few ranges recur in every proof against one tree size).
    // The groups of a plan cover disjoint ranges, so no node is needed twice.
    const out: Uint8Array[] = new Array(plan.length);
    const foldKeys: string[] = [];
    /** parts[i]: the member hashes of group i still to fold (fold groups not cached only). */
    const parts: Uint8Array[][] = [];
    const missing: NodeRef[] = [];
    const slots: number[] = []; // per missing node: group * 2^16 + member (MAX group length << 2^16)
    for (let i = 0; i < plan.length; i++) {
      const g = plan[i]!;
      if (g.length === 1) {
        const h = this.cacheGet(g[0]!);
        if (h) out[i] = h;
        else {
          missing.push(g[0]!);
          slots.push(i * SLOT);
        }
        continue;
      }
      const k = `${g[0]!.level}:${g[0]!.index}:${g.length}:${g[g.length - 1]!.level}:${g[g.length - 1]!.index}`;
      foldKeys[i] = k;
      const h = this.folds.get(k);
      if (h) {
        out[i] = h;
        continue;
      }
      // Cached members are taken now: fetching may clear the cache when it is full.
      const members: Uint8Array[] = (parts[i] = new Array(g.length));
      g.forEach((r, j) => {
        const c = this.cacheGet(r);
        if (c) members[j] = c;
        else {
          missing.push(r);
          slots.push(i * SLOT + j);
        }
      });
    }
    const got = await this.fetchList(missing);
    for (let m = 0; m < got.length; m++) {
      const i = Math.floor(slots[m]! / SLOT);
      if (plan[i]!.length === 1) out[i] = got[m]!;
      else parts[i]![slots[m]! % SLOT] = got[m]!;
    }
    parts.forEach((members, i) => {
      const h = foldRight(this.hasher, members);
      if (this.folds.size >= MAX_CACHED_FOLDS) this.folds.clear();
      this.folds.set(foldKeys[i]!, h);
      out[i] = h;
    });
    return out;
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
    if (size !== undefined && size > this.knownSize) await this.checkSize(size);
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
