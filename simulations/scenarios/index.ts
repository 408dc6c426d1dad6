import { decodeEnvelope } from '../../runtime/session/envelope.ts';
import { openMessage, type Session } from '../../runtime/session/session.ts';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import { fromB64u, toB64u } from '../../runtime/encoding/base64url.ts';
import { generateKek } from '../../runtime/secrets/keyring.ts';
import { TalosError } from '../../runtime/errors.ts';
import { INVARIANTS } from '../invariants.ts';
import { buildSystem, QUIET_PREFIX, type SimSystem, type SystemOptions } from '../system/compose.ts';
import { AUDITOR } from '../system/auditor.ts';
import { CALL_COST, GATEWAY } from '../system/gateway.ts';
import { UPSTREAM, type UpstreamHealth } from '../system/upstream.ts';
import type { World } from '../world.ts';

/**
 * The scenario library. Each scenario builds the standard deployment (system/compose.ts) with
 * its own workload, link conditions and fault plan, all drawn from the run's seed, and may add
 * final checks of its own. Every scenario also runs every general invariant.
 */
export interface ScenarioPlan {
  sys: SimSystem;
  final?: () => void | Promise<void>;
}

export interface Scenario {
  name: string;
  summary: string;
  setup(world: World): Promise<ScenarioPlan>;
}

/**
 * Simulated time runs at an agent's pace: a model turn takes a while, so an agent makes a tool
 * call every CALL_MEAN_MS on average. Fault plans are written for a 1-second load and stretched
 * by TIME_SCALE to the LOAD_MS the standard scenarios run.
 */
export const TIME_SCALE = 6;
export const CALL_MEAN_MS = 600;
export const LOAD_MS = 1000 * TIME_SCALE;
const S = TIME_SCALE;
const base = (o: Partial<SystemOptions> = {}): SystemOptions => ({ agents: 3, callMeanMs: CALL_MEAN_MS, loadUntil: LOAD_MS, ...o });

/** A fault window [start, start+length) drawn from the seed; returns the heal time. */
function window(world: World, label: string, earliest: number, latest: number, minLen: number, maxLen: number, on: () => void, off: () => void | Promise<void>): number {
  const r = world.rng.fork(`plan/${label}`);
  const start = r.range(earliest * S, latest * S);
  const end = start + r.range(minLen * S, maxLen * S);
  world.plan(start, `${label} on`, on);
  world.plan(end, `${label} off`, off, true);
  return end;
}

/**
 * A fault that strikes at the first packet of `type` sent after a random time: "mid-call"
 * precisely, not just somewhere in the run. `delayMs` after that send the fault fires; the
 * node comes back `downMs` later.
 */
function onPacket(world: World, label: string, type: string, earliest: number, latest: number, delayMs: number, downMs: [number, number], node: string): void {
  const r = world.rng.fork(`plan/${label}`);
  const armAt = r.range(earliest * S, latest * S);
  const down = r.range(downMs[0] * S, downMs[1] * S);
  let fired = false;
  world.healedAt = Math.max(world.healedAt, (latest + downMs[1]) * S + 1000);
  world.network.tap((p) => {
    if (fired || p.type !== type || world.scheduler.now < armAt) return;
    fired = true;
    world.scheduler.after(delayMs, `${label} on`, () => world.crash(node, `killed ${delayMs}ms after a ${type}`));
    world.plan(world.scheduler.now + delayMs + down, `${label} off`, () => world.restart(node), true);
  });
}

const gatewayCrash: Scenario = {
  name: 'gateway-crash',
  summary: 'the gateway process is killed mid-call (right after it forwards a call) and at a random moment, then restored from its store',
  async setup(world) {
    const sys = await buildSystem(world, base({ insiders: 1 }));
    onPacket(world, 'gateway-crash-mid-call', 'mcp.call', 100, 400, 0, [10, 300], GATEWAY);
    window(world, 'gateway-crash-random', 550, 850, 10, 150, () => world.crash(GATEWAY), () => world.restart(GATEWAY));
    return { sys };
  },
};

const flappingUpstream: Scenario = {
  name: 'flapping-upstream',
  summary: 'the upstream MCP server fails and goes silent on and off; the circuit breaker opens and closes',
  async setup(world) {
    const sys = await buildSystem(world, base());
    const r = world.rng.fork('plan/flap');
    let t = r.range(50, 200) * S;
    const states: UpstreamHealth[] = ['failing', 'silent', 'healthy'];
    while (t < 900 * S) {
      const h = r.pick(states);
      world.plan(t, `upstream ${h}`, () => {
        sys.upstream.health = h;
        world.trace.fault(h === 'healthy' ? 'heal' : 'upstream_' + h, UPSTREAM);
      });
      t += r.range(40, 300) * S;
    }
    world.plan(t, 'upstream healthy', () => void (sys.upstream.health = 'healthy'), true);
    return { sys };
  },
};

const partition: Scenario = {
  name: 'partition',
  summary: 'a network partition between agents and the gateway, on a lossy link, then healed',
  async setup(world) {
    const sys = await buildSystem(world, base());
    const cut = sys.agents.slice(0, 2).map((a) => a.name);
    for (const a of sys.agents) world.network.configure(a.name, GATEWAY, { drop: 0.02, reorder: 0.05 });
    window(world, 'partition', 100, 600, 100, 600, () => world.network.partition(cut, [GATEWAY]), () => world.network.heal());
    return { sys };
  },
};

const redisOutage: Scenario = {
  name: 'redis-outage',
  summary: 'the Redis behind rate limits and budgets is unreachable for a while: calls fail closed, then resume',
  async setup(world) {
    const sys = await buildSystem(world, base());
    window(
      world, 'redis-outage', 100, 600, 100, 500,
      () => { sys.redis.available = false; world.trace.fault('outage', 'redis'); },
      () => { sys.redis.available = true; world.trace.fault('heal', 'redis'); },
    );
    return {
      sys,
      final() {
        // Limits here are far above the load: once Redis is back, every call the policy allows
        // must go through. A refusal that outlives the outage (a ledger left stuck) is no progress.
        for (const c of sys.truth.calls.values()) {
          if (c.issuedAt < world.healedAt) continue;
          const policy = sys.truth.oracleRefuses({ tokenId: c.tokenId, sessionDid: c.agentDid, tool: c.tool, args: c.args, nowMs: world.clock(GATEWAY), order: Infinity });
          world.invariants.check(INVARIANTS.progressAfterHeal, policy !== null || c.outcome === 'ok', () => `call ${c.callId}, issued at ${c.issuedAt} ms after Redis came back, was refused`);
        }
      },
    };
  },
};

const auditCrash: Scenario = {
  name: 'audit-store-crash',
  summary: 'the auditor crashes (losing its unflushed appends) and restarts from its durable leaves',
  async setup(world) {
    const sys = await buildSystem(world, base({ callMeanMs: CALL_MEAN_MS / 2 }));
    // Twice right after an append arrives (before its group commit), once at random.
    onPacket(world, 'auditor-crash-0', 'audit.append', 50, 300, 3, [5, 100], AUDITOR);
    onPacket(world, 'auditor-crash-1', 'audit.append', 450, 650, 3, [5, 100], AUDITOR);
    window(world, 'auditor-crash-2', 750, 850, 5, 100, () => world.crash(AUDITOR), () => world.restart(AUDITOR));
    return { sys };
  },
};

const keyCompromise: Scenario = {
  name: 'key-compromise',
  summary: "an attacker steals both ends' session state of one agent; it must read nothing older, and lose access after two ratchet steps",
  async setup(world) {
    const sys = await buildSystem(world, base({ agents: 2, callMeanMs: CALL_MEAN_MS / 2 }));
    const victim = sys.agents[0]!;
    const firstSeen = new Map<string, number>();
    world.network.tap((p) => {
      if (p.type !== 'session.frame' || (p.from !== victim.name && p.to !== victim.name)) return;
      if (!firstSeen.has(p.payload)) firstSeen.set(p.payload, p.sentAt);
    });
    const attackerCrypto = createCryptoProvider({ name: world.options.crypto ?? 'node', random: world.rng.randomSource('attacker') });
    const stealAt = world.rng.fork('plan/steal').range(300, 800) * S;
    let follower: Session | null = null;
    let stolenAt = -1;
    const followed: { frame: string; sealedAt: number }[] = [];
    const tryOpen = (s: Session, frame: string): Session | null => {
      try {
        return openMessage(attackerCrypto, s, decodeEnvelope(frame), world.clock('attacker')).session;
      } catch (err) {
        if (err instanceof TalosError) return null;
        throw err;
      }
    };
    world.plan(stealAt, 'steal session state', () => {
      const gwSide = sys.gateway.sessions.get(victim.identity.did);
      const agentSide = victim.session;
      if (!gwSide || !agentSide) return;
      stolenAt = world.scheduler.now;
      world.trace.fault('key_compromise', victim.name, 'both session states copied by the attacker');
      // Forward secrecy: nothing either side already read opens with the stolen state.
      for (const o of sys.gateway.opened) {
        if (o.peer !== victim.identity.did) continue;
        world.invariants.check(INVARIANTS.forwardSecrecy, tryOpen(gwSide, o.frame) === null, () => `stolen gateway state opens a frame read at ${o.at}ms`);
      }
      for (const o of victim.opened) {
        world.invariants.check(INVARIANTS.forwardSecrecy, tryOpen(agentSide, o.frame) === null, () => `stolen agent state opens a frame read at ${o.at}ms`);
      }
      follower = gwSide;
    });
    // The attacker keeps following the agent's frames with the stolen gateway-side state.
    world.network.tap((p) => {
      if (!follower || p.from !== victim.name || p.type !== 'session.frame') return;
      const next = tryOpen(follower, p.payload);
      if (next) {
        follower = next;
        followed.push({ frame: p.payload, sealedAt: firstSeen.get(p.payload) ?? p.sentAt });
      }
    });
    return {
      sys,
      final() {
        if (stolenAt < 0) return;
        // Post-compromise security: after the victim's second DH ratchet step since the theft,
        // its new frames are out of the attacker's reach.
        const steps = victim.ratchetSteps.filter((t) => t > stolenAt);
        if (steps.length < 2) return;
        const recoveredAt = steps[1]!;
        const late = followed.filter((f) => f.sealedAt > recoveredAt);
        world.invariants.check(INVARIANTS.forwardSecrecy, late.length === 0, () => `attacker still reads frames sealed after recovery at ${recoveredAt}ms`);
      },
    };
  },
};

/** Flips one bit of the ciphertext of a frame, keeping it well-formed. */
function tamper(frame: string, bit: number): string | null {
  try {
    const o = JSON.parse(frame) as Record<string, unknown>;
    const ct = fromB64u(o.ct as string);
    const i = bit % (ct.length * 8);
    ct[i >> 3]! ^= 1 << (i & 7);
    o.ct = toB64u(ct);
    return JSON.stringify(o);
  } catch {
    return null;
  }
}

const replayTamper: Scenario = {
  name: 'replay-tamper',
  summary: 'a network attacker replays old frames and injects tampered copies ahead of the genuine ones',
  async setup(world) {
    const sys = await buildSystem(world, base({ agents: 2 }));
    for (const a of sys.agents) world.network.configure(a.name, GATEWAY, { duplicate: 0.05 });
    const r = world.rng.fork('attacker');
    world.network.tap((p) => {
      if (p.type !== 'session.frame' || p.trusted || world.scheduler.now > LOAD_MS) return;
      if (r.chance(0.25)) {
        const bad = tamper(p.payload, r.u32());
        if (bad) world.network.inject(p.from, p.to, p.type, bad, r.range(0, 1));
      }
      if (r.chance(0.15)) world.network.inject(p.from, p.to, p.type, p.payload, r.range(50, 800));
    });
    world.healedAt = LOAD_MS + 800;
    return { sys };
  },
};

const tokenRevoked: Scenario = {
  name: 'token-revoked',
  summary: "an agent's token is revoked while its calls are in flight (slow upstream); a leaked-token insider keeps trying",
  async setup(world) {
    const sys = await buildSystem(world, base({ agents: 3, insiders: 1, callMeanMs: CALL_MEAN_MS / 2 }));
    world.network.configure(GATEWAY, UPSTREAM, { baseMs: 20, jitterMeanMs: 30 });
    // Revoked the moment the gateway sends one of the victim's calls to the (slow) upstream,
    // after a random time, so a call on the token is in flight in every seed: its answer comes
    // back after the revocation, and the victim's next calls meet it at the gateway.
    const victim = sys.tokens.get('agent-0')!;
    const armAt = world.rng.fork('plan/revoke').range(200, 900) * S;
    let revoked = false;
    const revoke = (why: string) => {
      if (revoked) return;
      revoked = true;
      void sys.revoke(victim.id, why);
    };
    world.network.tap((p) => {
      if (revoked || p.type !== 'mcp.call' || world.scheduler.now < armAt || !p.payload.includes('"callId":"agent-0:')) return;
      revoke(`call ${(JSON.parse(p.payload) as { callId: string }).callId} of the token's agent is on its way to the upstream`);
    });
    // Should the victim make no call after armAt, the token is revoked at the end of the load.
    world.plan(LOAD_MS, 'revoke token (no call in flight)', () => revoke('no call of the token was in flight'));
    return { sys };
  },
};

const clockSkew: Scenario = {
  name: 'clock-skew',
  summary: 'node clocks disagree and the gateway clock jumps; tokens expire mid-run',
  async setup(world) {
    const r = world.rng.fork('plan/skew');
    for (const n of [GATEWAY, AUDITOR, 'redis', 'issuer', 'agent-0', 'agent-1', 'agent-2']) world.skew.set(n, r.range(-3000, 3000));
    // Tokens expire within the load in most seeds (a gateway clock far behind the issuer's may
    // not reach their exp), and their nbf is their issuance: a gateway clock behind the
    // issuer's refuses them as not yet valid at first.
    const sys = await buildSystem(world, base({ tokenTtlMs: r.range(500, 900) * S, nbfLeewayMs: 0 }));
    world.plan(r.range(200, 900) * S, 'gateway clock jumps', () => {
      const jump = r.range(-2000, 2000);
      world.skew.set(GATEWAY, (world.skew.get(GATEWAY) ?? 0) + jump);
      world.trace.fault('clock_jump', GATEWAY, `${jump}ms`);
    });
    return { sys };
  },
};

/** Refusals that come from the limits, not from the request. */
const LIMIT_REASONS = new Set(['rate_limited', 'budget_exhausted']);

const loadSpike: Scenario = {
  name: 'load-spike',
  summary: 'a burst of calls against tight rate limits and budgets: never more than the limits allow, and quiet agents keep their own allowance',
  async setup(world) {
    // Written for a 1-second plan and stretched by TIME_SCALE like every other scenario: for
    // 0.5 s, four agents each call every 25 ms on average (40 calls/s against a refill of 4/s
    // per tool; spread over two tools, 3-6x each bucket's), so each drains its buckets and
    // spends its budget within the spike.
    const rule = { capacity: 3, refillPerSecond: 4 / S };
    const budget = 5;
    // Two quiet agents call from 40 % into the spike on, while the busy agents are being refused
    // (the load-spike test holds that), but no more times than a full bucket holds and fewer
    // than their budget: no limit may ever refuse them.
    const loadUntil = 500 * S;
    const quiet = { agents: 2, startMs: loadUntil * 0.4, gapMs: loadUntil / 8, calls: rule.capacity };
    if (quiet.calls * CALL_COST > rule.capacity || quiet.calls * CALL_COST >= budget) throw new Error('load-spike: quiet agents could reach their limits');
    const sys = await buildSystem(world, base({ agents: 4, callMeanMs: 25 * S, loadUntil, rateRule: rule, budgetLimit: budget, quiet }));
    return {
      sys,
      final() {
        const byAgent = new Map<string, number>();
        const byBucket = new Map<string, number[]>();
        for (const a of sys.truth.allowedCalls) {
          byAgent.set(a.agent, (byAgent.get(a.agent) ?? 0) + 1);
          const k = `${a.agent}|${a.tool}`;
          byBucket.set(k, [...(byBucket.get(k) ?? []), a.at]);
        }
        for (const [agent, n] of byAgent) {
          world.invariants.check(INVARIANTS.limitsHold, n <= budget, () => `${agent} got ${n} calls allowed with a budget of ${budget}`);
        }
        for (const [k, times] of byBucket) {
          const span = (times[times.length - 1]! - times[0]!) / 1000;
          const bound = rule.capacity + Math.ceil(span * rule.refillPerSecond) + 1;
          world.invariants.check(INVARIANTS.limitsHold, times.length <= bound, () => `${k}: ${times.length} allowed in ${span}s (bound ${bound})`);
        }
        for (const c of sys.truth.calls.values()) {
          if (!c.agent.startsWith(QUIET_PREFIX)) continue;
          world.invariants.check(INVARIANTS.limitsIsolated, !LIMIT_REASONS.has(c.reason ?? ''), () => `${c.agent} was refused (${c.reason}) by limits it never reached`);
        }
      },
    };
  },
};

const kekRotation: Scenario = {
  name: 'kek-rotation',
  summary: 'the KEK wrapping the upstream credential is rotated twice under traffic, the second time while the gateway is down',
  async setup(world) {
    const sys = await buildSystem(world, base({ callMeanMs: CALL_MEAN_MS / 3 }));
    const r = world.rng.fork('plan/kek');
    const rotate = (i: number) => async () => {
      const kek = generateKek(world.crypto);
      world.scanner.key(kek.key, 'KEK');
      world.trace.fault('kek_rotation', 'vault', kek.id);
      await sys.vault.rotate(kek, { batchSize: 1 });
    };
    world.plan(r.range(100 * S, 400 * S), 'rotate KEK 0', rotate(0));
    // The second rotation lands inside a gateway crash: the gateway restarts and must read the
    // credential under a KEK it has never seen.
    const second = r.range(500 * S, 800 * S);
    world.plan(second - r.range(10 * S, 100 * S), 'gateway-crash on', () => world.crash(GATEWAY));
    world.plan(second, 'rotate KEK 1', rotate(1));
    world.plan(second + r.range(10 * S, 100 * S), 'gateway-crash off', () => world.restart(GATEWAY), true);
    return {
      sys,
      async final() {
        const ids = [...(await sys.vault.store.countByKek()).keys()];
        world.invariants.check(INVARIANTS.secretsReadable, ids.length === 1 && ids[0] === sys.vault.keyring.primaryId, () => `records still under old KEKs: ${ids.join(',')}`);
      },
    };
  },
};

const swarm: Scenario = {
  name: 'swarm',
  summary: 'many agents (some with leaked tokens) on a lossy, duplicating, reordering network, with one gateway crash',
  async setup(world) {
    const sys = await buildSystem(world, base({ agents: 12, insiders: 3, callMeanMs: 2 * CALL_MEAN_MS }));
    for (const a of sys.agents) world.network.configure(a.name, GATEWAY, { drop: 0.02, duplicate: 0.02, reorder: 0.05 });
    window(world, 'gateway-crash', 200, 800, 10, 150, () => world.crash(GATEWAY), () => world.restart(GATEWAY));
    return { sys };
  },
};

const gatewayAuditCrash: Scenario = {
  name: 'crash-storm',
  summary: 'gateway and auditor crash independently and repeatedly while the upstream is slow',
  async setup(world) {
    const sys = await buildSystem(world, base({ insiders: 1, callMeanMs: CALL_MEAN_MS / 2 }));
    world.network.configure(GATEWAY, UPSTREAM, { baseMs: 5, jitterMeanMs: 20 });
    for (let i = 0; i < 3; i++) {
      window(world, `gw-${i}`, 100 + i * 300, 300 + i * 300, 5, 120, () => world.crash(GATEWAY), () => world.restart(GATEWAY));
      window(world, `au-${i}`, 100 + i * 300, 300 + i * 300, 5, 120, () => world.crash(AUDITOR), () => world.restart(AUDITOR));
    }
    return { sys };
  },
};

export const SCENARIOS: readonly Scenario[] = [
  gatewayCrash,
  flappingUpstream,
  partition,
  redisOutage,
  auditCrash,
  keyCompromise,
  replayTamper,
  tokenRevoked,
  clockSkew,
  loadSpike,
  kekRotation,
  swarm,
  gatewayAuditCrash,
];

export class UnknownScenarioError extends TalosError {}

export function scenarioByName(name: string): Scenario {
  const s = SCENARIOS.find((x) => x.name === name);
  if (!s) throw new UnknownScenarioError('sim_unknown_scenario', `unknown scenario "${name}"; try: ${SCENARIOS.map((x) => x.name).join(', ')}`);
  return s;
}
