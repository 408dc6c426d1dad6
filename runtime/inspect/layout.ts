import type { AnyStateMachine } from 'xstate';
import { toDirectedGraph, type DirectedGraphNode } from 'xstate/graph';

/**
 * A drawable picture of a machine definition, computed from xstate's graph utilities:
 * states are placed in columns by their distance from the initial state (breadth-first over
 * transitions), edges carry their event labels. The page turns this into SVG.
 */
export interface DrawnState {
  /** The state node id, e.g. 'session.established'. */
  id: string;
  label: string;
  x: number;
  y: number;
  w: number;
  h: number;
  final: boolean;
  initial: boolean;
}

export interface DrawnEdge {
  source: string;
  target: string;
  label: string;
}

export interface MachineDrawing {
  machine: string;
  width: number;
  height: number;
  states: DrawnState[];
  edges: DrawnEdge[];
}

const COLUMN_GAP = 70;
const ROW_GAP = 28;
const BOX_HEIGHT = 34;
const CHAR_WIDTH = 7.5;
const MARGIN = 20;
/** Room above the first row for self-transition labels. */
const TOP = 34;

export function drawMachine(machine: AnyStateMachine): MachineDrawing {
  const root = toDirectedGraph(machine);
  const nodes: DirectedGraphNode[] = [];
  const collect = (n: DirectedGraphNode) => {
    for (const c of n.children) {
      nodes.push(c);
      collect(c);
    }
  };
  collect(root);

  const edges: DrawnEdge[] = [];
  const walkEdges = (n: DirectedGraphNode) => {
    for (const e of n.edges) {
      edges.push({ source: e.source.id, target: e.target.id, label: shortLabel(e.label.text) });
    }
    n.children.forEach(walkEdges);
  };
  walkEdges(root);
  // One arrow per pair of states: guarded branches of one event, or several events, share it.
  const merged = new Map<string, DrawnEdge>();
  for (const e of edges) {
    const key = `${e.source}\u0000${e.target}`;
    const seen = merged.get(key);
    if (!seen) merged.set(key, { ...e });
    else if (!seen.label.split(', ').includes(e.label)) seen.label += `, ${e.label}`;
  }
  edges.splice(0, edges.length, ...merged.values());

  // Rank by breadth-first distance from the root's initial state, following transitions; a
  // compound state leads to its own initial child (drawn one column to its right).
  // A parallel state leads to each of its regions, all entered at once.
  const initialIds = new Set<string>();
  const entered = new Map<string, string[]>();
  const markInitial = (n: DirectedGraphNode) => {
    const init = n.stateNode.initial?.target?.[0];
    if (n.stateNode.type === 'parallel') entered.set(n.id, n.children.map((c) => c.id));
    else if (init) {
      initialIds.add(init.id);
      entered.set(n.id, [init.id]);
    }
    n.children.forEach(markInitial);
  };
  markInitial(root);
  const rank = new Map<string, number>();
  const rootInitial = entered.get(root.id);
  const queue: string[] = rootInitial ? [...rootInitial] : nodes.slice(0, 1).map((n) => n.id);
  for (const id of queue) rank.set(id, 0);
  while (queue.length) {
    const id = queue.shift()!;
    const next = [...(entered.get(id) ?? []), ...edges.filter((e) => e.source === id).map((e) => e.target)];
    for (const target of next) {
      if (!rank.has(target)) {
        rank.set(target, rank.get(id)! + 1);
        queue.push(target);
      }
    }
  }
  const maxRank = Math.max(0, ...rank.values());
  for (const n of nodes) if (!rank.has(n.id)) rank.set(n.id, maxRank + 1);

  const label = (n: DirectedGraphNode) => n.stateNode.path.join('.');
  const columns = new Map<number, DirectedGraphNode[]>();
  for (const n of nodes) {
    const r = rank.get(n.id)!;
    columns.set(r, [...(columns.get(r) ?? []), n]);
  }
  const states: DrawnState[] = [];
  let x = MARGIN;
  let height = 0;
  for (const r of [...columns.keys()].sort((a, b) => a - b)) {
    const column = columns.get(r)!;
    const w = Math.max(...column.map((n) => label(n).length * CHAR_WIDTH + 24));
    column.forEach((n, i) => {
      const y = TOP + i * (BOX_HEIGHT + ROW_GAP);
      states.push({
        id: n.id,
        label: label(n),
        x,
        y,
        w,
        h: BOX_HEIGHT,
        final: n.stateNode.type === 'final',
        initial: initialIds.has(n.id),
      });
      height = Math.max(height, y + BOX_HEIGHT + MARGIN);
    });
    x += w + COLUMN_GAP;
  }
  return { machine: machine.id, width: x - COLUMN_GAP + MARGIN, height, states, edges };
}

/**
 * Edge labels as a reader wants them: xstate's internal event names (done/error of invoked
 * actors, delayed events, eventless transitions) become short words.
 */
export function shortLabel(text: string): string {
  if (text === '') return 'always';
  if (text.startsWith('xstate.done.actor.')) return 'done';
  if (text.startsWith('xstate.error.actor.')) return 'error';
  if (text.startsWith('xstate.done.state.')) return 'done';
  const after = /^xstate\.after\.([^.]+)\./.exec(text);
  if (after) return `after ${after[1]}`;
  return text;
}

/** The ids of the state nodes active in a snapshot value (for highlighting). */
export function activeStateIds(machineId: string, value: unknown): string[] {
  const out: string[] = [];
  const walk = (prefix: string, v: unknown) => {
    if (typeof v === 'string') out.push(`${prefix}.${v}`);
    else if (v && typeof v === 'object') {
      for (const [k, child] of Object.entries(v)) {
        out.push(`${prefix}.${k}`);
        walk(`${prefix}.${k}`, child);
      }
    }
  };
  walk(machineId, value);
  return out;
}
