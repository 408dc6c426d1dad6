import { signCheckpoint, type LogKey } from '../../runtime/audit/checkpoint.ts';
import { leafBytes, type AuditEvent } from '../../runtime/audit/event.ts';
import { LightClient } from '../../runtime/audit/light-client.ts';
import { createHasher, verifyConsistency } from '../../runtime/audit/merkle.ts';
import { MemoryTree } from '../../runtime/audit/memory-tree.ts';
import { fromUtf8 } from '../../runtime/encoding/bytes.ts';
import { TalosError } from '../../runtime/errors.ts';
import { INVARIANTS } from '../invariants.ts';
import type { Packet } from '../network.ts';
import { SimDisk } from '../storage.ts';
import type { SimNode, World } from '../world.ts';

/**
 * The simulated auditor: the real audit event schema and leaf bytes, the real RFC 9162 tree
 * (MemoryTree), real signed C2SP checkpoints, checked by the real light client. Appends are
 * group-committed: buffered, flushed every FLUSH_INTERVAL_MS, acknowledged only once flushed.
 * A crash loses the unflushed tail; on restart the tree is rebuilt from the flushed leaves.
 * Appends are idempotent by key (kind, msg_hash, decision, reason), so a gateway may retry freely.
 */
/** Group commit: a batch is flushed this long after its first write. */
export const FLUSH_INTERVAL_MS = 4;
export const CHECKPOINT_INTERVAL_MS = 250;
export const AUDITOR = 'auditor';

export interface AppendRequest {
  op: 'append';
  key: string;
  event: AuditEvent;
}

export class SimAuditor implements SimNode {
  readonly name = AUDITOR;
  readonly kind = 'auditor' as const;
  up = true;
  epoch = 0;
  readonly disk = new SimDisk();
  private tree: MemoryTree;
  private readonly hasher;
  private index = new Map<string, number>();
  private events: AuditEvent[] = [];
  private flushedSize = 0;
  private waiting: { key: string; from: string; index: number }[] = [];
  private flushPending = false;
  private readonly logKey: LogKey;
  readonly publicKey: Uint8Array;
  /** The log's verifiers: one light client, and every checkpoint published so far. */
  readonly lightClient: LightClient;
  readonly published: { size: number; root: Uint8Array }[] = [];
  /** Observer's view (survives crashes): where each kind:msg_hash's leaves were written on disk. */
  private readonly written = new Map<string, string[]>();

  constructor(private readonly world: World) {
    this.hasher = createHasher((d) => world.crypto.sha256(d));
    this.tree = new MemoryTree(this.hasher);
    const seed = world.crypto.randomBytes(32);
    world.scanner.key(seed, 'audit log key');
    this.logKey = { origin: 'talos.sim/audit', seed };
    this.publicKey = world.crypto.ed25519PublicKey(seed);
    this.lightClient = new LightClient(world.crypto, { origin: this.logKey.origin, publicKey: this.publicKey });
    world.network.attach(this.name, (p) => this.receive(p));
    this.checkpointLoop(this.epoch);
  }

  /** Durable allow decision recorded for this request hash? (read by the invariant at the upstream) */
  durablyAllowed(msgHash: string): boolean {
    for (const k of this.written.get(`request:${msgHash}`) ?? []) {
      const rec = this.disk.getDurable(k);
      if (rec !== undefined && (JSON.parse(JSON.parse(rec).leaf) as AuditEvent).decision === 'allow') return true;
    }
    return false;
  }

  get size(): number {
    return this.flushedSize;
  }

  private receive(p: Packet): void {
    const req = JSON.parse(p.payload) as AppendRequest;
    const leak = this.world.scanner.scan(JSON.stringify(req.event));
    this.world.invariants.check(INVARIANTS.noSecretsLeak, leak === null, () => `audit event carries ${leak}`);
    const existing = this.index.get(req.key);
    if (existing !== undefined) {
      if (existing < this.flushedSize) this.ack(p.from, req.key, existing);
      else this.waiting.push({ key: req.key, from: p.from, index: existing });
      return;
    }
    let leaf: Uint8Array;
    try {
      leaf = leafBytes(req.event);
    } catch (err) {
      if (err instanceof TalosError) return this.world.invariants.fail('crash', `auditor refused an event: ${err.code} ${err.message}`);
      throw err;
    }
    const i = this.events.length;
    this.events.push(req.event);
    this.index.set(req.key, i);
    this.tree.appendLeaf(leaf);
    const diskKey = `leaf:${String(i).padStart(10, '0')}`;
    this.disk.write(diskKey, JSON.stringify({ key: req.key, leaf: fromUtf8(leaf) }));
    const byHash = `${req.event.kind}:${req.event.msg_hash}`;
    this.written.set(byHash, [...(this.written.get(byHash) ?? []), diskKey]);
    this.waiting.push({ key: req.key, from: p.from, index: i });
    if (!this.flushPending) {
      this.flushPending = true;
      this.scheduleFlush(this.epoch);
    }
  }

  private ack(to: string, key: string, index: number): void {
    this.world.network.send(this.name, to, 'audit.ack', JSON.stringify({ key, index }));
  }

  /** Group commit: flush, then acknowledge every append the flush made durable. */
  private scheduleFlush(epoch: number): void {
    this.world.scheduler.after(FLUSH_INTERVAL_MS, 'auditor flush', () => {
      if (epoch !== this.epoch) return;
      this.flushPending = false;
      this.disk.flush();
      this.flushedSize = this.events.length;
      const ready = this.waiting.filter((w) => w.index < this.flushedSize);
      this.waiting = this.waiting.filter((w) => w.index >= this.flushedSize);
      for (const w of ready) this.ack(w.from, w.key, w.index);
    });
  }

  private checkpointLoop(epoch: number): void {
    this.world.scheduler.after(CHECKPOINT_INTERVAL_MS, 'auditor checkpoint', () => {
      if (epoch !== this.epoch) return;
      this.publishCheckpoint();
      this.checkpointLoop(epoch);
    });
  }

  /** Signs a checkpoint over the flushed prefix only, and hands it to the verifiers. */
  publishCheckpoint(): void {
    const size = this.flushedSize;
    const last = this.published[this.published.length - 1];
    if (last && last.size === size && this.lightClient.checkpoint?.size === size) return; // nothing new to sign
    const root = this.tree.rootAt(size);
    const signed = signCheckpoint(this.world.crypto, this.logKey, { size, root });
    const inv = this.world.invariants;
    const current = this.lightClient.checkpoint;
    const proof = current && current.size < size ? this.tree.consistencyProof(current.size, size) : [];
    let adopted = true;
    try {
      this.lightClient.update(signed.note, proof);
    } catch (err) {
      adopted = false;
      const code = err instanceof TalosError ? err.code : String(err);
      inv.check(INVARIANTS.checkpointsConsistent, false, () => `light client refused checkpoint ${size}: ${code}`);
    }
    // Consistency is transitive: checking each checkpoint against the previous one (with a
    // proof from the log, against the roots as published) covers every earlier one.
    if (last) {
      const earlier = last;
      const ok =
        earlier.size <= size &&
        verifyConsistency(this.hasher, earlier.size, size, earlier.root, root, earlier.size === size || earlier.size === 0 ? [] : this.tree.consistencyProof(earlier.size, size));
      inv.check(INVARIANTS.checkpointsConsistent, ok, () => `checkpoint ${size} is not consistent with earlier checkpoint ${earlier.size}`);
    }
    if (adopted) this.published.push({ size, root });
    this.world.trace.state(this.name, 'checkpoint', 'active', { size });
  }

  crash(): void {
    const lost = this.disk.crash();
    if (lost > 0) this.world.trace.fault('storage_lost', this.name, `${lost} unflushed leaves lost`);
    this.tree = new MemoryTree(this.hasher);
    this.index = new Map();
    this.events = [];
    this.flushedSize = 0;
    this.waiting = [];
    this.flushPending = false;
  }

  restart(): void {
    for (const k of this.disk.keys('leaf:')) {
      const { key, leaf } = JSON.parse(this.disk.getDurable(k)!) as { key: string; leaf: string };
      const event = JSON.parse(leaf) as AuditEvent;
      this.index.set(key, this.events.length);
      this.events.push(event);
      this.tree.appendLeaf(leafBytes(event));
    }
    this.flushedSize = this.events.length;
    this.checkpointLoop(this.epoch);
  }
}
