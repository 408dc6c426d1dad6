import { startAuditor, type Auditor } from '../../actors/auditor/index.ts';
import { DEFAULT_AUDITOR_CONFIG } from '../../machines/auditor.machine.ts';
import type { LogKey, SignedCheckpoint } from '../../runtime/audit/checkpoint.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';
import { LightClient } from '../../runtime/audit/light-client.ts';
import { AuditLog } from '../../runtime/audit/log.ts';
import { createHasher, verifyConsistency, type Hasher } from '../../runtime/audit/merkle.ts';
import { fromUtf8 } from '../../runtime/encoding/bytes.ts';
import { TalosError } from '../../runtime/errors.ts';
import { SimAuditStore } from '../audit-store.ts';
import { INVARIANTS } from '../invariants.ts';
import type { Packet } from '../network.ts';
import type { SimNode, World } from '../world.ts';

/** The product's default (machines/auditor.machine.ts): the simulation runs the auditor as shipped. */
export const CHECKPOINT_INTERVAL_MS = DEFAULT_AUDITOR_CONFIG.checkpointEveryMs;
export const AUDITOR = 'auditor';

export interface AppendRequest {
  op: 'append';
  key: string;
  event: AuditEvent;
}

/**
 * The simulated auditor node: the REAL auditor actor (actors/auditor: the XState auditor
 * machine with its group commit and checkpoint timer, on the simulated clock) over the real
 * AuditLog, over a simulated AuditStore whose uncommitted transactions a crash loses. Appends
 * arrive over the network and are acknowledged once durable; checkpoints go to the real light
 * client, and each is checked against the previous one with a proof from the log.
 */
export class SimAuditor implements SimNode {
  readonly name = AUDITOR;
  readonly kind = 'auditor' as const;
  up = true;
  epoch = 0;
  readonly store: SimAuditStore;
  private readonly hasher: Hasher;
  private log!: AuditLog;
  private actor!: Auditor;
  private readonly logKey: LogKey;
  readonly publicKey: Uint8Array;
  readonly lightClient: LightClient;
  readonly published: { size: number; root: Uint8Array }[] = [];
  /** Observer's index of DURABLE entries: `kind:msg_hash` -> decisions recorded. */
  private readonly durable = new Map<string, Set<string>>();

  constructor(private readonly world: World) {
    this.hasher = createHasher((d) => world.crypto.sha256(d));
    this.store = new SimAuditStore(this.hasher);
    this.store.onCommit = (leaf) => {
      const e = JSON.parse(fromUtf8(leaf)) as AuditEvent;
      const k = `${e.kind}:${e.msg_hash}`;
      const set = this.durable.get(k) ?? new Set<string>();
      set.add(e.decision ?? '');
      this.durable.set(k, set);
    };
    const seed = world.crypto.randomBytes(32);
    world.scanner.key(seed, 'audit log key');
    this.logKey = { origin: 'talos.sim/audit', seed };
    this.publicKey = world.crypto.ed25519PublicKey(seed);
    this.lightClient = new LightClient(world.crypto, { origin: this.logKey.origin, publicKey: this.publicKey });
    world.network.attach(this.name, (p) => this.receive(p));
    this.boot();
  }

  private boot(): void {
    const epoch = this.epoch;
    this.log = new AuditLog(this.store, this.hasher);
    this.actor = startAuditor({
      log: this.log,
      crypto: this.world.crypto,
      key: this.logKey,
      ...(this.world.inspect ? { inspect: this.world.inspect } : {}),
      onCheckpoint: (cp) => {
        if (epoch === this.epoch) this.world.spawn(this.verifyCheckpoint(cp));
      },
      onError: (what, error) => this.world.trace.fault('auditor_error', this.name, `${what}: ${error instanceof TalosError ? error.code : 'error'}`),
    });
  }

  /** Is an allow decision for this request hash durable in the log? (read at the upstream) */
  durablyAllowed(msgHash: string): boolean {
    return this.durable.get(`request:${msgHash}`)?.has('allow') ?? false;
  }

  private receive(p: Packet): void {
    const req = JSON.parse(p.payload) as AppendRequest;
    const leak = this.world.scanner.scan(JSON.stringify(req.event));
    this.world.invariants.check(INVARIANTS.noSecretsLeak, leak === null, () => `audit event carries ${leak}`);
    const epoch = this.epoch;
    this.actor.append(req.event).then(
      (a) => {
        if (epoch === this.epoch) this.world.network.send(this.name, p.from, 'audit.ack', JSON.stringify({ key: req.key, index: a.index }));
      },
      (err: unknown) => {
        if (epoch !== this.epoch) return;
        // Refused (backpressure, bad event) or the batch failed: no ack, the gateway retries.
        this.world.trace.fault('audit_refused', this.name, err instanceof TalosError ? err.code : 'error');
      },
    );
  }

  /** Every checkpoint: the light client must adopt it, and it must extend the previous one. */
  private async verifyCheckpoint(cp: SignedCheckpoint): Promise<void> {
    const inv = this.world.invariants;
    const current = this.lightClient.checkpoint;
    const proof = current && current.size < cp.size ? await this.log.consistencyProof(current.size, cp.size) : [];
    try {
      this.lightClient.update(cp.note, proof);
    } catch (err) {
      const code = err instanceof TalosError ? err.code : String(err);
      inv.check(INVARIANTS.checkpointsConsistent, false, () => `light client refused checkpoint ${cp.size}: ${code}`);
    }
    // Consistency is transitive: checking each checkpoint against the previous one (with a
    // proof from the log, against the roots as published) covers every earlier one.
    const last = this.published[this.published.length - 1];
    if (last) {
      const p = last.size === cp.size || last.size === 0 ? [] : await this.log.consistencyProof(last.size, cp.size);
      const ok = last.size <= cp.size && verifyConsistency(this.hasher, last.size, cp.size, last.root, cp.root, p);
      inv.check(INVARIANTS.checkpointsConsistent, ok, () => `checkpoint ${cp.size} is not consistent with the previous checkpoint ${last.size}`);
    }
    this.published.push({ size: cp.size, root: cp.root });
    this.world.trace.state(this.name, 'checkpoint', 'active', { size: cp.size });
  }

  crash(): void {
    this.actor.actor.stop();
    const lost = this.store.crash();
    if (lost > 0) this.world.trace.fault('storage_lost', this.name, `${lost} uncommitted leaves lost`);
  }

  restart(): void {
    this.boot();
  }
}
