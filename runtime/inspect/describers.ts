import type { AnyStateMachine } from 'xstate';
import { auditorMachine, type AuditorContext } from '../../machines/auditor.machine.ts';
import { gatewayMachine, type GatewayContext } from '../../machines/gateway.machine.ts';
import { sessionMachine, type SessionContext } from '../../machines/session.machine.ts';
import { tgaMachine, type TgaContext } from '../../machines/tga.machine.ts';
import { upstreamMachine, type UpstreamContext } from '../../machines/upstream.machine.ts';
import { toB64u } from '../encoding/base64url.ts';
import type { Describer, Recorder } from './recorder.ts';

/**
 * What the inspector may show about each kind of actor. Every describer picks named public
 * facts out of a context: identifiers, counters, states. Keys, ratchet chains, queued
 * plaintexts and error texts that could quote data are never read. A describer never throws:
 * a context of another shape gives an empty description.
 */
export type SafeDetails = Record<string, string | number | boolean>;

/** Characters of a session id shown (enough to tell sessions apart, not the whole id). */
export const SID_PREFIX_CHARS = 8;
/** A DID is shortened to its method, first and last characters of its key part. */
const DID_KEEP = 8;

export function shortDid(did: string): string {
  const colon = did.lastIndexOf(':');
  const id = did.slice(colon + 1);
  return id.length <= DID_KEEP * 2 ? did : `${did.slice(0, colon + 1)}${id.slice(0, DID_KEEP)}…${id.slice(-4)}`;
}

const guarded =
  <C>(describe: (c: C) => SafeDetails): Describer =>
  (context) => {
    try {
      return context && typeof context === 'object' ? describe(context as C) : {};
    } catch {
      return {};
    }
  };

export const describeSession = guarded<SessionContext>((c) => {
  const s = c.session;
  const out: SafeDetails = { queued: c.queue.length };
  if (s) {
    out.sid = `${toB64u(s.sid).slice(0, SID_PREFIX_CHARS)}…`;
    out.role = s.role;
    out.mode = s.mode;
    out.peer = shortDid(s.peer);
    // Counters of the current sending/receiving chains (the ratchet restarts them on each turn).
    out['sent (chain)'] = s.ratchet.ns;
    out['received (chain)'] = s.ratchet.nr;
    out['skipped keys'] = s.ratchet.skipped.length;
  }
  if (c.closeRequested) out['close requested'] = c.closeRequested;
  if (c.failure) out.failure = c.failure;
  return out;
});

export const describeGateway = guarded<GatewayContext>((c) => ({
  'open sessions': c.sessions,
  'sessions opened': c.sessionsOpened,
  'refused handshakes': c.refusedHandshakes,
  'drifted tools': c.drift,
}));

export const describeUpstream = guarded<UpstreamContext>((c) => ({
  name: c.name,
  connects: c.connects,
  attempts: c.attempts,
  'drifted tools': c.drift.length,
}));

export const describeAuditor = guarded<AuditorContext>((c) => ({
  checkpoints: c.checkpoints,
  'last checkpoint size': c.checkpointSize,
  'uncovered commits': c.dirty ? 'yes' : 'no',
}));

export const describeTga = guarded<TgaContext>((c) => {
  const out: SafeDetails = { 'recent restarts': c.restartTimes.length };
  for (const [name, child] of Object.entries(c.children)) out[name] = `${child.status}, ${child.restarts} restarts${child.lastFault ? `, last fault ${child.lastFault}` : ''}`;
  if (c.escalation) out.escalated = `${c.escalation.child}: ${c.escalation.code}`;
  return out;
});

/** Every machine of the actor system with its describer, for the inspector to draw and describe. */
export function talosMachines(): Array<{ machine: AnyStateMachine; describe: Describer }> {
  return [
    { machine: sessionMachine, describe: describeSession },
    { machine: gatewayMachine, describe: describeGateway },
    { machine: upstreamMachine, describe: describeUpstream },
    { machine: auditorMachine, describe: describeAuditor },
    { machine: tgaMachine, describe: describeTga },
  ];
}

/** Registers every Talos machine and its describer, keeping any describer already registered. */
export function registerTalosMachines(recorder: Recorder): Recorder {
  for (const { machine, describe } of talosMachines()) if (!recorder.describes(machine.id)) recorder.register(machine, describe);
  return recorder;
}
