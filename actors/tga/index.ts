import { createActor, fromCallback, type AnyActorLogic, type InspectionEvent } from 'xstate';
import { tgaMachine, type TgaInput } from '../../machines/tga.machine.ts';
import type { DriftFinding } from '../../runtime/drift/index.ts';
import { MAX_TIMER_MS } from '../../runtime/jobs/in-process.ts';
import type { BreakerState, ChildKind, DriftReported } from '../messages.ts';

export interface TgaServices {
  /** Called once when the TGA reaches `stopped`: closes stores, servers, connections. */
  release: () => void;
  /** Told when the restart budget is spent (logs and metrics hook here). */
  onEscalation?: (child: string, code: string) => void;
  /** Told after each one-for-one restart. */
  onRestart?: (child: string, code: string) => void;
  /** Told of every breaker transition the TGA receives. */
  onBreaker?: (name: string, state: BreakerState) => void;
  /** Told of every drift check that found differences. */
  onDrift?: (findings: DriftFinding[]) => void;
  /** The logic of each kind of child the runtime runs. */
  children?: Partial<Record<ChildKind, AnyActorLogic>>;
  /** One drift check (compare, then reconcile what the policy says); absent: no drift monitor. */
  checkDrift?: () => Promise<Omit<DriftReported, 'type'>>;
  /** Time between two drift checks. */
  driftIntervalMs?: number;
}

/**
 * The longest drift interval: the longest delay Node's timers take (a longer one runs after 1 ms
 * instead: drift checks back to back). The runtime refuses more with `config_invalid`.
 */
export const MAX_DRIFT_INTERVAL_MS = MAX_TIMER_MS;

/**
 * The drift monitor: checks on its interval and on `drift.check`, one check at a time, and
 * sends each result to the TGA. A check that throws is reported as a finding (never silent).
 */
function driftMonitor(check: (() => Promise<Omit<DriftReported, 'type'>>) | undefined, intervalMs: number | undefined) {
  return fromCallback<{ type: 'drift.check' }>(({ sendBack, receive }) => {
    if (!check) return () => {};
    let running: Promise<void> | undefined;
    let stopped = false;
    const run = () => {
      running ??= check()
        .then(
          (r) => {
            if (!stopped) sendBack({ type: 'drift.report', findings: r.findings, digest: r.digest });
          },
          (err: unknown) => {
            const code = (err as { code?: unknown })?.code;
            if (!stopped) {
              sendBack({
                type: 'drift.report',
                digest: '',
                findings: [{ kind: 'config', subject: `check_failed:${typeof code === 'string' ? code : 'error'}`, action: 'reported' }],
              });
            }
          },
        )
        .finally(() => (running = undefined));
    };
    receive(() => run());
    const timer = intervalMs ? setInterval(run, intervalMs) : undefined;
    timer?.unref();
    return () => {
      stopped = true;
      if (timer) clearInterval(timer);
    };
  });
}

/** Binds the pure TGA machine to the runtime's services and starts it as the system root. */
export function startTga(services: TgaServices, options: { inspect?: (event: InspectionEvent) => void; input?: TgaInput } = {}) {
  const machine = tgaMachine.provide({
    actions: {
      releaseResources: () => services.release(),
      reportEscalation: (_, { child, code }) => services.onEscalation?.(child, code),
      reportRestart: (_, { child, code }) => services.onRestart?.(child, code),
      reportBreaker: (_, { name, state }) => services.onBreaker?.(name, state),
      reportDrift: (_, { findings }) => {
        if (findings.length > 0) services.onDrift?.(findings);
      },
    },
    actors: {
      ...(services.children ?? {}),
      driftMonitor: driftMonitor(services.checkDrift, services.driftIntervalMs),
    },
  });
  const actor = createActor(machine, {
    systemId: 'tga',
    input: options.input ?? {},
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
  actor.start();
  return actor;
}

export type TgaActor = ReturnType<typeof startTga>;
