import { createCryptoProvider, type CryptoProvider } from '../runtime/crypto/index.ts';
import { withMethods } from '../runtime/crypto/provider.ts';
import type { InspectionEvent } from 'xstate';
import { createRecorder } from '../runtime/inspect/recorder.ts';
import { describeError } from '../runtime/errors.ts';
import { startTga, type TgaActor } from '../actors/tga/index.ts';
import type { ChildKind } from '../actors/messages.ts';
import { withKeyPairsAhead } from './key-pairs-ahead.ts';
import { rememberAnswers } from './provider-memos.ts';
import { InvariantLog, InvariantViolation, INVARIANTS } from './invariants.ts';
import { SimNetwork } from './network.ts';
import { Rng } from './random.ts';
import { Scheduler } from './scheduler.ts';
import { SecretScanner } from './secrets-scan.ts';
import { TraceWriter } from './trace-writer.ts';

/**
 * Deliberately broken variants, for the simulator's own tests ("teeth"): each one removes a
 * safety step from the simulated composition, and the sweep must find it. Passed in the run
 * options of one run; never a global switch, never read by production code.
 */
export const BROKEN_VARIANTS = [
  'forward-before-audit',
  'non-transactional-decrypt',
  'skip-sub-check',
  'plaintext-frames',
  'shared-limits',
  'resend-after-restart',
  'limits-fail-open',
] as const;
export type BrokenVariant = (typeof BROKEN_VARIANTS)[number];

export interface WorldOptions {
  scenario: string;
  seed: number;
  /** Test-only: one broken variant of the composition. */
  __broken?: BrokenVariant;
  /** Crypto provider (both give identical bytes; default node, the faster). */
  crypto?: 'node' | 'noble';
}

/** A node that can crash and be restarted by the scenario's fault plan. */
export interface SimNode {
  readonly name: string;
  readonly kind: ChildKind;
  up: boolean;
  /** Bumped at each crash: async work started before a crash checks it and stops. */
  epoch: number;
  crash(): void;
  restart(): void | Promise<void>;
}

export class World {
  readonly rng: Rng;
  readonly scheduler = new Scheduler();
  readonly trace: TraceWriter;
  readonly network: SimNetwork;
  readonly invariants: InvariantLog;
  readonly scanner = new SecretScanner();
  readonly crypto: CryptoProvider;
  readonly nodes = new Map<string, SimNode>();
  readonly broken: BrokenVariant | undefined;
  /** Simulated time by which the scenario has healed every fault it injected. */
  healedAt = 0;
  /** Per-node clock offsets (clock skew), milliseconds. */
  readonly skew = new Map<string, number>();
  private tga: TgaActor | null = null;
  /** XState inspection hook for actors started in the run (their states go to the trace). */
  inspect: ((event: InspectionEvent) => void) | undefined;
  private stopFollowing: (() => void) | null = null;

  constructor(readonly options: WorldOptions) {
    this.rng = new Rng(options.seed);
    this.broken = options.__broken;
    this.trace = new TraceWriter(TraceWriter.header(options.scenario, options.seed), () => this.scheduler.now);
    this.network = new SimNetwork(this.scheduler, this.rng.fork('network'), this.trace);
    this.invariants = new InvariantLog(() => this.scheduler.now);
    const name = options.crypto ?? 'node';
    const provider = createCryptoProvider({ name, random: this.rng.randomSource('crypto') });
    // Fresh X25519 pairs from a stream of their own, their public keys made ahead on a helper
    // thread for the node provider (the noble one computes its own: a pure-JavaScript run).
    // Answers one party has computed are given again to the others (provider-memos.ts).
    const crypto = rememberAnswers(withKeyPairsAhead(provider, this.rng.randomSource('x25519'), name === 'node'));
    this.crypto = this.broken === 'plaintext-frames' ? withoutEncryption(crypto) : crypto;
    this.scheduler.onError = (err) => this.report(err);
    // No plaintext or key bytes on an untrusted link, ever: every packet is scanned as sent.
    this.network.tap((p) => {
      if (p.trusted) return;
      const leak = this.scanner.scan(p.payload);
      this.invariants.check(INVARIANTS.noSecretsLeak, leak === null, () => `${p.type} from ${p.from} to ${p.to} carries ${leak}`);
    });
  }

  /** Starts the real TGA actor (its states go to the trace through the inspector's recorder). */
  startSupervisor(): void {
    const recorder = createRecorder({ now: () => this.scheduler.now });
    this.stopFollowing = this.trace.follow(recorder);
    this.inspect = recorder.inspect;
    this.tga = startTga({ release: () => {} }, { inspect: recorder.inspect });
  }

  stopSupervisor(): void {
    this.tga?.send({ type: 'tga.stop' });
    this.tga?.stop();
    this.stopFollowing?.();
  }

  /** A node's wall clock: simulated epoch time plus its skew. */
  clock(node: string): number {
    return this.scheduler.epochNow() + (this.skew.get(node) ?? 0);
  }

  add(node: SimNode): void {
    this.nodes.set(node.name, node);
    // Simulated nodes are not XState machines: no `machine` field, so the inspector does not
    // try to draw a machine graph for them; their kind goes in the state details.
    this.trace.actor(node.name);
    this.trace.state(node.name, 'up', 'active', { kind: node.kind });
    this.tga?.send({ type: 'child.up', id: node.name, kind: node.kind });
  }

  crash(name: string, detail = 'process killed'): void {
    const node = this.nodes.get(name);
    if (!node || !node.up) return;
    node.up = false;
    node.epoch++;
    this.network.setDown(name, true);
    this.trace.fault('crash', name, detail);
    this.trace.state(name, 'down', 'stopped');
    this.tga?.send({ type: 'child.fault', id: name, kind: node.kind, code: 'crashed' });
    node.crash();
  }

  async restart(name: string): Promise<void> {
    const node = this.nodes.get(name);
    if (!node || node.up) return;
    node.up = true;
    this.network.setDown(name, false);
    this.trace.fault('restart', name, 'restored from its store');
    this.trace.state(name, 'up');
    this.tga?.send({ type: 'child.up', id: name, kind: node.kind });
    await node.restart();
  }

  /** Schedules a fault-plan step; marks `healedAt` when the step heals something. */
  plan(at: number, label: string, fn: () => void | Promise<void>, heals = false): void {
    if (heals) this.healedAt = Math.max(this.healedAt, at);
    this.scheduler.at(at, label, fn);
  }

  /** Runs a detached async task; an unexpected error fails the run instead of vanishing. */
  spawn(task: Promise<unknown>): void {
    task.catch((err: unknown) => this.report(err));
  }

  /** An error escaped a handler: a violation (already recorded) or a crash of the simulation. */
  report(err: unknown): void {
    if (err instanceof InvariantViolation) return;
    try {
      this.invariants.fail('crash', `unexpected error: ${describeError(err)}`);
    } catch {
      /* recorded */
    }
  }
}

/**
 * BROKEN (test-only): ChaCha20-Poly1305 that does not encrypt (the plaintext and a zero tag):
 * session frames then carry their plaintext, base64url-encoded, for the leak scanner to find.
 */
function withoutEncryption(base: CryptoProvider): CryptoProvider {
  const tag = new Uint8Array(16);
  return withMethods(base, {
    chachaSeal: (_key: Uint8Array, _nonce: Uint8Array, plaintext: Uint8Array) => Buffer.concat([plaintext, tag]),
    chachaOpen: (_key: Uint8Array, _nonce: Uint8Array, sealed: Uint8Array) => sealed.slice(0, sealed.length - tag.length),
  });
}
