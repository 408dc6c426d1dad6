import type { CryptoProvider } from '../crypto/provider.ts';
import type { AuditStore } from '../store/audit-store.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { fromUtf8 } from '../encoding/bytes.ts';
import { parseJson } from '../encoding/json.ts';
import { jcs } from '../encoding/jcs.ts';
import { type Hasher } from './merkle.ts';
import { Frontier, nodeKey, type Node, type NodeRef } from './tree.ts';
import { encodeFrontier } from '../store/audit-store.ts';
import { openCheckpoint } from './checkpoint.ts';
import { checkEvent } from './event.ts';

/**
 * Full audit of a stored log: recomputes the whole tree from the events alone (streamed in
 * pages), and checks every stored complete node (all levels, since proofs are served from
 * them), the head's stored frontier (appends continue from it), every stored checkpoint (signature, and root
 * equal to the recomputed root at its size) and the head. Reports the first bad index.
 */
export const VERIFY_PAGE = 5_000;

export interface VerifyProblem {
  /** First leaf index known to be bad (null for a problem not tied to one leaf). */
  index: number | null;
  what: string;
}

export interface VerifyReport {
  ok: boolean;
  size: number;
  checkpoints: number;
  problems: VerifyProblem[];
  firstBadIndex: number | null;
}

export interface VerifyOptions {
  crypto: CryptoProvider;
  hasher: Hasher;
  origin: string;
  publicKey: Uint8Array;
  onProgress?: (done: number, total: number) => void;
  /** Stop after this many problems. */
  maxProblems?: number;
}

export async function verifyStoredLog(store: AuditStore, options: VerifyOptions): Promise<VerifyReport> {
  const { hasher, crypto } = options;
  const maxProblems = options.maxProblems ?? 20;
  const problems: VerifyProblem[] = [];
  const head = await store.head();
  const frontier = Frontier.empty(hasher);
  // Checkpoints sorted by size; each is checked when the recomputed tree reaches its size.
  const checkpoints: { size: number; note: string }[] = [];
  // Paged by size; re-signed checkpoints of one size beyond a page's end would be skipped,
  // which needs more than VERIFY_PAGE signatures of the same size (never written by Talos).
  for (let from = 0; ; ) {
    const page = await store.listCheckpoints(from, VERIFY_PAGE);
    checkpoints.push(...page);
    if (page.length < VERIFY_PAGE) break;
    from = page[page.length - 1]!.size + 1;
  }
  let ci = 0;
  let lastGoodCheckpoint = 0;
  let badCheckpoint: number | null = null;
  const checkCheckpointsAt = (size: number) => {
    while (ci < checkpoints.length && checkpoints[ci]!.size === size) {
      const c = checkpoints[ci++]!;
      try {
        const cp = openCheckpoint(crypto, c.note, options.origin, options.publicKey);
        if (cp.size !== c.size) problems.push({ index: null, what: `checkpoint row of size ${c.size} holds a note of size ${cp.size}` });
        else if (!bytesEqual(cp.root, frontier.root())) {
          problems.push({ index: null, what: `signed checkpoint of size ${c.size} does not match the events: an event in [${lastGoodCheckpoint}, ${c.size}) changed` });
          badCheckpoint ??= lastGoodCheckpoint;
        } else if (badCheckpoint === null) lastGoodCheckpoint = c.size;
      } catch (e) {
        problems.push({ index: null, what: `checkpoint of size ${c.size} is not validly signed (${(e as { code?: string }).code ?? 'error'})` });
      }
    }
  };
  checkCheckpointsAt(0);
  let expected = 0;
  let stop = false;
  // Leaves already reported bad: the interior nodes above them are then not reported again.
  const badLeaves: number[] = [];
  while (!stop) {
    const page = await store.readLeaves(expected, VERIFY_PAGE);
    if (page.length === 0) break;
    const refs: NodeRef[] = page.map((l) => ({ level: 0, index: l.index }));
    const stored = await store.getNodes(refs);
    const completed: Node[] = [];
    for (const l of page) {
      if (l.index !== expected) {
        problems.push({ index: expected, what: `event ${expected} is missing (next stored index is ${l.index})` });
        stop = true;
        break;
      }
      try {
        const ev = checkEvent(parseJson(fromUtf8(l.leaf)));
        if (jcs(ev) !== fromUtf8(l.leaf)) problems.push({ index: l.index, what: `event ${l.index} is not in canonical (JCS) form` });
      } catch {
        problems.push({ index: l.index, what: `event ${l.index} is not a valid audit event` });
      }
      const h = hasher.hashLeaf(l.leaf);
      const s = stored.get(nodeKey(0, l.index));
      if (!s || !bytesEqual(s, h)) {
        problems.push({ index: l.index, what: `event ${l.index} does not match its stored leaf hash` });
        badLeaves.push(l.index);
      }
      frontier.append(h, completed);
      expected++;
      checkCheckpointsAt(expected);
      if (problems.length >= maxProblems) {
        stop = true;
        break;
      }
    }
    // Interior nodes this page completed: proofs and checkpoints are built from the stored
    // ones, so each must equal the node recomputed from the events.
    const interior = completed.filter((n) => n.level > 0);
    const storedInterior = interior.length > 0 ? await store.getNodes(interior) : new Map<string, Uint8Array>();
    for (const n of interior) {
      if (problems.length >= maxProblems) {
        stop = true;
        break;
      }
      const lo = n.index * 2 ** n.level;
      const hi = lo + 2 ** n.level;
      if (badLeaves.some((i) => i >= lo && i < hi)) continue;
      const s = storedInterior.get(nodeKey(n.level, n.index));
      if (!s) problems.push({ index: null, what: `tree node ${n.level}/${n.index} (events [${lo}, ${hi})) is missing` });
      else if (!bytesEqual(s, n.hash)) problems.push({ index: null, what: `stored tree node ${n.level}/${n.index} (events [${lo}, ${hi})) does not match the events` });
    }
    options.onProgress?.(expected, head.size);
  }
  if (!stop) {
    if (expected < head.size) problems.push({ index: expected, what: `the head says ${head.size} events but only ${expected} are stored` });
    else if (expected > head.size) problems.push({ index: head.size, what: `${expected - head.size} events stored beyond the head (size ${head.size})` });
    else {
      if (!bytesEqual(frontier.root(), head.root)) problems.push({ index: null, what: 'the stored head root does not match the events' });
      // The next append continues from the stored frontier, not from the root.
      const blob = await store.storedFrontier();
      if (blob === null ? expected > 0 : !bytesEqual(blob, encodeFrontier(frontier))) problems.push({ index: null, what: 'the stored head frontier does not match the events' });
    }
    for (; ci < checkpoints.length; ci++) problems.push({ index: null, what: `checkpoint of size ${checkpoints[ci]!.size} is beyond the stored events (${expected})` });
  }
  const indexed = problems.filter((p) => p.index !== null).map((p) => p.index!);
  let firstBadIndex = indexed.length > 0 ? Math.min(...indexed) : null;
  // When only signed checkpoints disagree (events and stored hashes rewritten together), the
  // first bad index is not knowable from the events: report the lower bound, the size of the
  // last checkpoint that still matched.
  if (firstBadIndex === null && badCheckpoint !== null) firstBadIndex = badCheckpoint;
  return { ok: problems.length === 0, size: expected, checkpoints: checkpoints.length, problems, firstBadIndex };
}
