import { AuditError } from './errors.ts';
import { type Hasher, isSize, splitPoint } from './merkle.ts';

/**
 * Complete subtrees ("nodes") and how proofs are assembled from them. A node (level, index)
 * covers leaves [index * 2^level, (index + 1) * 2^level); once written it never changes, so
 * stores keep every node and caches may keep any of them forever. Hashes that RFC 9162 needs
 * over incomplete ranges (the tree's right edge) are folded from complete nodes on demand.
 */
export interface NodeRef {
  level: number;
  index: number;
}
export interface Node extends NodeRef {
  hash: Uint8Array;
}

export const nodeKey = (level: number, index: number): string => `${level}:${index}`;

/** The complete nodes that make up [lo, hi), left to right (lo aligned for the RFC shapes). */
export function rangeNodes(lo: number, hi: number): NodeRef[] {
  const out: NodeRef[] = [];
  while (lo < hi) {
    let level = 0;
    let width = 1;
    while (lo % (width * 2) === 0 && lo + width * 2 <= hi) {
      width *= 2;
      level++;
    }
    out.push({ level, index: lo / width });
    lo += width;
  }
  return out;
}

/** One proof element: the fold-right of these complete nodes (a single node when complete). */
export type ProofPlan = NodeRef[][];

/** RFC 9162 2.1.3.1 PATH(m, D[n]), bottom-up, as nodes to fetch. */
export function inclusionPlan(index: number, size: number): ProofPlan {
  if (!isSize(size) || !isSize(index) || index >= size) throw new AuditError('bad_index', 'leaf index is not below the tree size');
  const out: ProofPlan = [];
  let lo = 0;
  let hi = size;
  const topDown: NodeRef[][] = [];
  while (hi - lo > 1) {
    const k = splitPoint(hi - lo);
    if (index < lo + k) {
      topDown.push(rangeNodes(lo + k, hi));
      hi = lo + k;
    } else {
      topDown.push(rangeNodes(lo, lo + k));
      lo = lo + k;
    }
  }
  for (let i = topDown.length - 1; i >= 0; i--) out.push(topDown[i]!);
  return out;
}

/** RFC 9162 2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), as nodes to fetch. */
export function consistencyPlan(oldSize: number, newSize: number): ProofPlan {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize > newSize) throw new AuditError('bad_size', 'old size exceeds new size');
  if (oldSize === 0 || oldSize === newSize) return [];
  const topDown: NodeRef[][] = [];
  let lo = 0;
  let hi = newSize;
  let m = oldSize; // relative to lo
  let complete = true; // the RFC's b flag: whether the old subtree's root is known to the verifier
  for (;;) {
    if (m === hi - lo) {
      if (!complete) topDown.push(rangeNodes(lo, hi));
      break;
    }
    const k = splitPoint(hi - lo);
    if (m <= k) {
      topDown.push(rangeNodes(lo + k, hi));
      hi = lo + k;
    } else {
      topDown.push(rangeNodes(lo, lo + k));
      lo = lo + k;
      m -= k;
      complete = false;
    }
  }
  return topDown.reverse();
}

export function planRefs(plan: ProofPlan): NodeRef[] {
  const seen = new Set<string>();
  const out: NodeRef[] = [];
  for (const group of plan) {
    for (const r of group) {
      const k = nodeKey(r.level, r.index);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(r);
      }
    }
  }
  return out;
}

export function foldRight(hasher: Hasher, hashes: Uint8Array[]): Uint8Array {
  let acc = hashes[hashes.length - 1]!;
  for (let i = hashes.length - 2; i >= 0; i--) acc = hasher.hashChildren(hashes[i]!, acc);
  return acc;
}

/** Turns a plan into proof hashes given the fetched nodes (keyed by nodeKey). */
export function assemble(hasher: Hasher, plan: ProofPlan, nodes: Map<string, Uint8Array>): Uint8Array[] {
  return plan.map((group) =>
    foldRight(
      hasher,
      group.map((r) => {
        const h = nodes.get(nodeKey(r.level, r.index));
        if (!h) throw new AuditError('store_corrupt', `missing tree node ${r.level}/${r.index}`);
        return h;
      }),
    ),
  );
}

/**
 * The right edge of the tree: one hash per set bit of the size (levels strictly decreasing).
 * O(log n) state is all that appending needs; each append reports the nodes it completed.
 */
export class Frontier {
  private constructor(
    private readonly hasher: Hasher,
    private _size: number,
    private readonly stack: Node[],
  ) {}

  static empty(hasher: Hasher): Frontier {
    return new Frontier(hasher, 0, []);
  }

  /** Rebuilds from the complete nodes of rangeNodes(0, size), left to right. */
  static fromNodes(hasher: Hasher, size: number, nodes: Node[]): Frontier {
    const want = rangeNodes(0, size);
    if (want.length !== nodes.length || want.some((r, i) => r.level !== nodes[i]!.level || r.index !== nodes[i]!.index)) {
      throw new AuditError('store_corrupt', 'frontier nodes do not match the tree size');
    }
    return new Frontier(hasher, size, nodes.map((n) => ({ ...n })));
  }

  get size(): number {
    return this._size;
  }

  nodes(): Node[] {
    return this.stack.map((n) => ({ ...n }));
  }

  clone(): Frontier {
    return new Frontier(this.hasher, this._size, this.nodes());
  }

  /** Appends one leaf hash; returns every node completed (the leaf itself first). */
  append(leafHash: Uint8Array, completed: Node[] = []): Node[] {
    const leaf: Node = { level: 0, index: this._size, hash: leafHash };
    this.stack.push(leaf);
    completed.push(leaf);
    while (this.stack.length >= 2 && this.stack[this.stack.length - 1]!.level === this.stack[this.stack.length - 2]!.level) {
      const right = this.stack.pop()!;
      const left = this.stack.pop()!;
      const parent: Node = { level: left.level + 1, index: left.index / 2, hash: this.hasher.hashChildren(left.hash, right.hash) };
      this.stack.push(parent);
      completed.push(parent);
    }
    this._size++;
    return completed;
  }

  /** foldRight over the stack's hashes, read in place (every append asks for it: no array per call). */
  root(): Uint8Array {
    const stack = this.stack;
    if (stack.length === 0) return this.hasher.emptyRoot();
    let acc = stack[stack.length - 1]!.hash;
    for (let i = stack.length - 2; i >= 0; i--) acc = this.hasher.hashChildren(stack[i]!.hash, acc);
    return acc;
  }
}
