import type { Rng } from './random.ts';
import type { Scheduler } from './scheduler.ts';
import type { TraceWriter } from './trace-writer.ts';

/**
 * The simulated network between named nodes. Each directed link has a latency distribution
 * (a fixed base plus exponential jitter), and probabilities of dropping, duplicating and
 * reordering (an extra, long delay) a message. Partitions cut links in both directions until
 * healed; a message is lost when, at delivery time, its link is cut or its receiver is down.
 * Every loss is a `drop` fault in the trace (a random drop's detail is `<type> from <sender>`,
 * a loss at delivery adds its cause).
 * Payloads are strings: exactly the bytes that would be on the wire.
 */
export interface LinkConfig {
  baseMs: number;
  jitterMeanMs: number;
  drop: number;
  duplicate: number;
  reorder: number;
  /** Extra delay of a reordered message: exponential with this mean. */
  reorderMeanMs: number;
  /**
   * A link inside one trust boundary (the gateway's stdio to its upstream MCP server): what
   * crosses it is not scanned for plaintext. Every other link is an untrusted network.
   */
  trusted: boolean;
}

export const DEFAULT_LINK: LinkConfig = {
  baseMs: 2,
  jitterMeanMs: 3,
  drop: 0,
  duplicate: 0,
  reorder: 0,
  reorderMeanMs: 30,
  trusted: false,
};

/** Copies of one message in flight at most (duplication cannot snowball). */
export const MAX_COPIES = 2;

export interface Packet {
  id: number;
  from: string;
  to: string;
  type: string;
  payload: string;
  sentAt: number;
  trusted: boolean;
}

export type Receiver = (packet: Packet) => void | Promise<void>;

export class SimNetwork {
  private readonly receivers = new Map<string, Receiver>();
  private readonly links = new Map<string, Partial<LinkConfig>>();
  private readonly cuts = new Set<string>();
  private readonly down = new Set<string>();
  private readonly taps: ((p: Packet) => void)[] = [];
  /** Each link's merged configuration, made at its first send: send() runs per packet. */
  private readonly resolved = new Map<string, Readonly<LinkConfig>>();
  private nextId = 1;
  #defaults: Readonly<LinkConfig> = Object.freeze({ ...DEFAULT_LINK });
  sent = 0;
  delivered = 0;

  constructor(
    private readonly scheduler: Scheduler,
    private readonly rng: Rng,
    private readonly trace: TraceWriter,
  ) {}

  attach(node: string, receiver: Receiver): void {
    this.receivers.set(node, receiver);
  }

  /** Every link's configuration where not configured (frozen: replace it, do not edit it). */
  get defaults(): Readonly<LinkConfig> {
    return this.#defaults;
  }

  set defaults(config: LinkConfig) {
    this.#defaults = Object.freeze({ ...config });
    this.resolved.clear();
  }

  /** Sets (part of) the configuration of the link from -> to, or both directions. */
  configure(a: string, b: string, config: Partial<LinkConfig>, both = true): void {
    this.links.set(`${a}>${b}`, { ...this.links.get(`${a}>${b}`), ...config });
    if (both) this.links.set(`${b}>${a}`, { ...this.links.get(`${b}>${a}`), ...config });
    this.resolved.clear();
  }

  link(from: string, to: string): Readonly<LinkConfig> {
    const key = `${from}>${to}`;
    let cfg = this.resolved.get(key);
    if (!cfg) this.resolved.set(key, (cfg = Object.freeze({ ...this.#defaults, ...this.links.get(key) })));
    return cfg;
  }

  /** Sees every packet as it is sent (the attacker, the leak scanner). */
  tap(fn: (p: Packet) => void): void {
    this.taps.push(fn);
  }

  setDown(node: string, down: boolean): void {
    if (down) this.down.add(node);
    else this.down.delete(node);
  }

  isDown(node: string): boolean {
    return this.down.has(node);
  }

  partition(groupA: readonly string[], groupB: readonly string[]): void {
    for (const a of groupA) for (const b of groupB) this.cuts.add(pairKey(a, b));
    this.trace.fault('partition', groupA.join(','), `from ${groupB.join(',')}`);
  }

  heal(): void {
    if (this.cuts.size === 0) return;
    this.cuts.clear();
    this.trace.fault('heal', undefined, 'all partitions healed');
  }

  isCut(a: string, b: string): boolean {
    return this.cuts.size > 0 && this.cuts.has(pairKey(a, b));
  }

  send(from: string, to: string, type: string, payload: string): void {
    const cfg = this.link(from, to);
    const packet: Packet = { id: this.nextId++, from, to, type, payload, sentAt: this.scheduler.now, trusted: cfg.trusted };
    this.sent++;
    for (const t of this.taps) t(packet);
    if (this.down.has(from)) return; // a crashed node sends nothing
    if (this.rng.chance(cfg.drop)) {
      this.trace.fault('drop', to, `${type} from ${from}`);
      return;
    }
    const copies = this.rng.chance(cfg.duplicate) ? MAX_COPIES : 1;
    if (copies > 1) this.trace.fault('duplicate', to, `${type} from ${from}`);
    for (let i = 0; i < copies; i++) {
      let delay = cfg.baseMs + Math.round(this.rng.exponential(cfg.jitterMeanMs));
      if (this.rng.chance(cfg.reorder)) delay += Math.round(this.rng.exponential(cfg.reorderMeanMs));
      this.scheduler.after(delay, `deliver ${type}`, () => this.deliver(packet));
    }
  }

  /** Puts a packet on the wire as if `from` had sent it (an attacker's injection or replay). */
  inject(from: string, to: string, type: string, payload: string, delayMs: number): void {
    const packet: Packet = { id: this.nextId++, from, to, type, payload, sentAt: this.scheduler.now, trusted: false };
    this.trace.fault('inject', to, `${type} as ${from}`);
    this.scheduler.after(delayMs, `deliver injected ${type}`, () => this.deliver(packet));
  }

  private async deliver(packet: Packet): Promise<void> {
    // A loss is traced like a random drop, with its cause: the trace shows where frames vanished.
    if (this.down.has(packet.to)) return this.lost(packet, 'receiver down');
    if (this.isCut(packet.from, packet.to)) return this.lost(packet, 'partitioned');
    const receiver = this.receivers.get(packet.to);
    if (!receiver) return this.lost(packet, 'no receiver');
    this.delivered++;
    this.trace.message(packet.from, packet.to, packet.type);
    await receiver(packet);
  }

  /** Off the delivery path: the detail string is built only for a packet that is lost. */
  private lost(packet: Packet, cause: string): void {
    this.trace.fault('drop', packet.to, `${packet.type} from ${packet.from}: ${cause}`);
  }
}

const pairKey = (a: string, b: string) => (a < b ? `${a}|${b}` : `${b}|${a}`);
