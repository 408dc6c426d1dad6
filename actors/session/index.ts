import { createActor, fromPromise, type Actor, type InspectionEvent, type SimulatedClock } from 'xstate';
import {
  sessionMachine,
  type ProcessOutput,
  type SessionOp,
  type SessionOutbound,
  type SessionStart,
  type StartOutput,
} from '../../machines/session.machine.ts';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import type { Identity } from '../../runtime/identity/identity.ts';
import { decodeEnvelope, encodeEnvelope } from '../../runtime/session/envelope.ts';
import { SessionError, sessionError } from '../../runtime/session/errors.ts';
import type { HandshakeStore, SessionStore } from '../../runtime/session/ports.ts';
import { acceptFirstMessage } from '../../runtime/session/responder.ts';
import { initiateSession, openMessage, sealClose, sealMessage, type Offer, type Session } from '../../runtime/session/session.ts';

/**
 * The session actor: machines/session.machine.ts bound to a crypto provider and a store.
 * Each operation commits to the store (one transaction) before its output reaches the owner,
 * so a frame the owner sends is always one the store can continue from after a crash.
 * Refusals (SessionError) become REFUSED outputs and leave the session as it was; anything else
 * (a store that fails) fails the actor with FAILED {code}.
 */
export type { SessionOutbound, SessionStart } from '../../machines/session.machine.ts';

export interface SessionActorOptions {
  crypto: CryptoProvider;
  identity: Identity;
  store: SessionStore & HandshakeStore;
  start: SessionStart;
  /** Messages to the owner: OUTBOUND, RECEIVED, REFUSED, CLOSED, FAILED. */
  onOutput: (message: SessionOutbound) => void;
  idleTimeoutMs?: number;
  /** Wall clock for skipped-key ages and bundle expiry (ms). */
  now?: () => number;
  /** XState clock for the idle timer (SimulatedClock in tests and simulations). */
  clock?: SimulatedClock;
  systemId?: string;
  /** XState inspection hook (the live inspector's recorder). */
  inspect?: (event: InspectionEvent) => void;
}

export type SessionActor = Actor<typeof sessionMachine>;

export function createSessionActor(options: SessionActorOptions): SessionActor {
  const { crypto, identity, store } = options;
  const now = options.now ?? Date.now;

  async function start(input: SessionStart): Promise<StartOutput> {
    if (input.kind === 'initiate') {
      const session = initiateSession(crypto, identity, input.offer as Offer, now());
      await store.save(session);
      return { session };
    }
    if (input.kind === 'accept') {
      const envelope = decodeEnvelope(input.frame);
      // A later first-message frame of a session we already hold (the initiator had not heard
      // back yet, or we restarted): an ordinary message of the stored session.
      const existing = await store.load(envelope.sid);
      if (existing && !existing.closed) {
        const opened = openMessage(crypto, existing, envelope, now());
        if (opened.closeReason !== undefined) {
          // The peer's close: the session ends here, and a closed session's keys are deleted.
          await store.delete(existing.sid);
          return { session: opened.session, closeReason: opened.closeReason };
        }
        await store.save(opened.session);
        return { session: opened.session, plaintext: opened.plaintext };
      }
      const accepted = await acceptFirstMessage(crypto, identity, envelope, store, now());
      return { session: accepted.session, plaintext: accepted.plaintext };
    }
    const session = await store.load(input.sid);
    if (!session || session.closed) throw sessionError('unknown_session', 'no stored open session with this id');
    return { session };
  }

  async function process({ session, op }: { session: Session; op: SessionOp }): Promise<ProcessOutput> {
    let result: ProcessOutput;
    try {
      if (op.type === 'send') {
        const sealed = sealMessage(crypto, session, op.plaintext);
        result = { kind: 'sent', session: sealed.session, frame: encodeEnvelope(sealed.envelope) };
      } else {
        const opened = openMessage(crypto, session, decodeEnvelope(op.frame), now());
        result =
          opened.closeReason !== undefined
            ? { kind: 'peer_closed', session: opened.session, reason: opened.closeReason }
            : { kind: 'received', session: opened.session, plaintext: opened.plaintext };
      }
    } catch (err) {
      if (err instanceof SessionError) return { kind: 'refused', code: err.code };
      throw err;
    }
    // Commit before the output leaves: a closed session's keys are deleted, not kept.
    if (result.kind === 'peer_closed') await store.delete(session.sid);
    else await store.save(result.session);
    return result;
  }

  async function shutdown(input: { session: Session | null; reason: string; notifyPeer: boolean }) {
    if (!input.session || input.session.closed) return { frame: null };
    let frame: string | null = null;
    try {
      if (input.notifyPeer) frame = encodeEnvelope(sealClose(crypto, input.session, input.reason).envelope);
    } catch (err) {
      if (!(err instanceof SessionError)) throw err;
    }
    await store.delete(input.session.sid);
    return { frame };
  }

  const machine = sessionMachine.provide({
    actors: {
      start: fromPromise(({ input }) => start(input)),
      process: fromPromise(({ input }) => process(input)),
      shutdown: fromPromise(({ input }) => shutdown(input)),
    },
    actions: {
      toOwner: (_, message) => options.onOutput(message),
    },
  });
  const input = options.idleTimeoutMs === undefined ? { start: options.start } : { start: options.start, idleTimeoutMs: options.idleTimeoutMs };
  return createActor(machine, {
    input,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.systemId ? { systemId: options.systemId } : {}),
    ...(options.inspect ? { inspect: options.inspect } : {}),
  });
}
