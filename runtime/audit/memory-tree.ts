import { type Hasher } from './merkle.ts';
import { Frontier, assemble, consistencyPlan, inclusionPlan, nodeKey, planRefs, type Node } from './tree.ts';

/**
 * A whole tree in memory: every complete node in a Map, plus the frontier. The reference the
 * stores are tested against, and the proof source of small in-process logs.
 */
export class MemoryTree {
  readonly nodes = new Map<string, Uint8Array>();
  private readonly frontier: Frontier;

  constructor(private readonly hasher: Hasher) {
    this.frontier = Frontier.empty(hasher);
  }

  get size(): number {
    return this.frontier.size;
  }

  appendLeaf(leaf: Uint8Array): Node[] {
    return this.appendLeafHash(this.hasher.hashLeaf(leaf));
  }

  appendLeafHash(leafHash: Uint8Array): Node[] {
    const done = this.frontier.append(leafHash);
    for (const n of done) this.nodes.set(nodeKey(n.level, n.index), n.hash);
    return done;
  }

  root(): Uint8Array {
    return this.frontier.root();
  }

  /** Root of the tree as it was at `size` (any size up to the current one). */
  rootAt(size: number): Uint8Array {
    if (size === 0) return this.hasher.emptyRoot();
    const f = Frontier.fromNodes(
      this.hasher,
      size,
      planRefs([rangeOf(size)]).map((r) => ({ ...r, hash: this.nodes.get(nodeKey(r.level, r.index))! })),
    );
    return f.root();
  }

  inclusionProof(index: number, size = this.size): Uint8Array[] {
    return assemble(this.hasher, inclusionPlan(index, size), this.nodes);
  }

  consistencyProof(oldSize: number, newSize = this.size): Uint8Array[] {
    return assemble(this.hasher, consistencyPlan(oldSize, newSize), this.nodes);
  }
}

import { rangeNodes } from './tree.ts';
const rangeOf = (size: number) => rangeNodes(0, size);
