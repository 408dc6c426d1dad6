import { AuditError } from '../runtime/audit/errors.ts';
import type { Hasher } from '../runtime/audit/merkle.ts';
import { Frontier, nodeKey, type NodeRef } from '../runtime/audit/tree.ts';
import {
  checkBatch,
  checkPage,
  encodeFrontier,
  hashBatch,
  type AppendResult,
  type AuditStore,
  type Head,
  type StoredCheckpoint,
  type StoredLeaf,
} from '../runtime/store/audit-store.ts';

/**
 * A simulated AuditStore (the port of runtime/store/audit-store.ts) with a disk's failure
 * mode: an append is a transaction that commits FLUSH_DELAY_MS after it was issued (an fsync
 * on the simulated clock: setTimeout is faked during a run), and only then resolves. A crash
 * loses every transaction not yet committed; their callers never hear back, as with a killed
 * process. Committed data (leaves, complete nodes, head, checkpoints) survives crashes.
 */
export const FLUSH_DELAY_MS = 4;

interface PendingBatch {
  leaves: Uint8Array[];
  leafHashes?: Uint8Array[];
  resolve: (r: AppendResult) => void;
  reject: (e: unknown) => void;
}

export class SimAuditStore implements AuditStore {
  /** The port names its adapters; this one stands in for the embedded (SQLite) store. */
  readonly kind = 'sqlite' as const;
  /** Committed leaves by index (holes only where the disk was tampered with). */
  private leaves: (Uint8Array | undefined)[] = [];
  private readonly nodes = new Map<string, Uint8Array>();
  private frontier: Frontier;
  private checkpoints: StoredCheckpoint[] = [];
  private pending: PendingBatch[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | null = null;
  /** Called with each committed leaf (observers: the invariant checks read durable data only). */
  onCommit: (leaf: Uint8Array, index: number) => void = () => {};
  lostOnCrash = 0;

  constructor(private readonly hasher: Hasher) {
    this.frontier = Frontier.empty(hasher);
  }

  append(leaves: Uint8Array[], leafHashes?: readonly Uint8Array[]): Promise<AppendResult> {
    try {
      checkBatch(leaves, leafHashes);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise((resolve, reject) => {
      this.pending.push({ leaves: leaves.map((l) => l.slice()), ...(leafHashes ? { leafHashes: leafHashes.map((h) => h.slice()) } : {}), resolve, reject });
      if (!this.flushTimer) this.flushTimer = setTimeout(() => this.flush(), FLUSH_DELAY_MS);
    });
  }

  /** Commits every pending transaction, in order. */
  private flush(): void {
    this.flushTimer = null;
    const batches = this.pending;
    this.pending = [];
    for (const b of batches) {
      const first = this.frontier.size;
      const { nodes, leafHashes } = hashBatch(this.hasher, this.frontier, b.leaves, b.leafHashes);
      for (const n of nodes) this.nodes.set(nodeKey(n.level, n.index), n.hash);
      b.leaves.forEach((l, i) => {
        this.leaves[first + i] = l;
        this.onCommit(l, first + i);
      });
      b.resolve({ first, size: this.frontier.size, root: this.frontier.root(), leafHashes });
    }
  }

  /** The process holding the store died: uncommitted transactions are gone. */
  crash(): number {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    const lost = this.pending.reduce((n, b) => n + b.leaves.length, 0);
    this.lostOnCrash += lost;
    this.pending = [];
    return lost;
  }

  async head(): Promise<Head> {
    return { size: this.frontier.size, root: this.frontier.root() };
  }

  /** Durable state is the live frontier itself (a crash rebuilds it from the durable leaves). */
  async storedFrontier(): Promise<Uint8Array | null> {
    return encodeFrontier(this.frontier);
  }

  async getNodes(refs: NodeRef[]): Promise<Map<string, Uint8Array>> {
    const out = new Map<string, Uint8Array>();
    for (const r of refs) {
      const k = nodeKey(r.level, r.index);
      const h = this.nodes.get(k);
      if (h) out.set(k, h);
    }
    return out;
  }

  async readLeaves(from: number, limit: number): Promise<StoredLeaf[]> {
    checkPage(from, limit);
    const out: StoredLeaf[] = [];
    for (let i = from; i < this.leaves.length && out.length < limit; i++) {
      const leaf = this.leaves[i];
      if (leaf) out.push({ index: i, leaf: leaf.slice() });
    }
    return out;
  }

  async readLeaf(index: number): Promise<Uint8Array | null> {
    return this.leaves[index]?.slice() ?? null;
  }

  async putCheckpoint(cp: StoredCheckpoint): Promise<void> {
    if (cp.size > this.frontier.size) throw new AuditError('bad_checkpoint', 'checkpoint beyond the stored head');
    this.checkpoints.push({ ...cp });
  }

  async latestCheckpoint(): Promise<StoredCheckpoint | null> {
    return this.checkpoints.at(-1) ?? null;
  }

  async listCheckpoints(fromSize: number, limit: number): Promise<StoredCheckpoint[]> {
    checkPage(fromSize, limit);
    return this.checkpoints
      .filter((c) => c.size >= fromSize)
      .sort((a, b) => a.size - b.size)
      .slice(0, limit);
  }

  async byteSize(): Promise<number> {
    return this.leaves.reduce((n, l) => n + (l?.length ?? 0), 0) + this.nodes.size * 32;
  }

  async close(): Promise<void> {}

  /**
   * What someone with access to the disk can do behind the store's back (the AuditStore
   * contract's tamper cases): the same raw edits the SQL adapters' tests make with SQL.
   */
  readonly disk = {
    setLeaf: (index: number, leaf: Uint8Array): void => {
      this.leaves[index] = leaf.slice();
    },
    deleteLeaf: (index: number): void => {
      this.leaves[index] = undefined;
    },
    moveLeaf: (from: number, to: number): void => {
      this.leaves[to] = this.leaves[from];
      this.leaves[from] = undefined;
    },
    setCheckpointNote: (size: number, note: string): void => {
      for (const c of this.checkpoints) if (c.size === size) c.note = note;
    },
    /** Events, nodes and head go; checkpoints stay (as before a history rewrite). */
    wipeTree: (): void => {
      this.leaves = [];
      this.nodes.clear();
      this.frontier = Frontier.empty(this.hasher);
    },
  };
}
