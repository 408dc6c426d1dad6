import t from 'tap';
import { createActor, fromPromise, SimulatedClock } from 'xstate';
import { sessionMachine, MAX_PENDING_OPS, type ProcessOutput, type SessionOp, type SessionOutbound, type StartOutput } from './session.machine.ts';
import type { Session } from '../runtime/session/session.ts';

// The machine alone, with its effects replaced by scripted ones: this checks the state logic
// (ordering, refusals, close and failure paths); actors/session tests it with real crypto and SQLite.
const fakeSession = (n: number) => ({ v: 1, n }) as unknown as Session;

function harness(
  process: (input: { session: Session; op: SessionOp }) => Promise<ProcessOutput>,
  opts: { startFails?: boolean; start?: () => Promise<StartOutput> } = {},
) {
  const out: SessionOutbound[] = [];
  const shutdowns: string[] = [];
  const machine = sessionMachine.provide({
    actors: {
      start: fromPromise(async () => {
        if (opts.start) return opts.start();
        if (opts.startFails) throw Object.assign(new Error('x'), { code: 'bad_bundle' });
        return { session: fakeSession(0) };
      }),
      process: fromPromise(({ input }) => process(input)),
      shutdown: fromPromise(async ({ input }) => {
        shutdowns.push(input.reason);
        return { frame: 'close-frame' };
      }),
    },
    actions: { toOwner: (_, m) => void out.push(m) },
  });
  const clock = new SimulatedClock();
  const actor = createActor(machine, { input: { start: { kind: 'resume', sid: new Uint8Array(16) }, idleTimeoutMs: 50 }, clock });
  return { actor, out, shutdowns, clock };
}
const tick = () => new Promise((r) => setImmediate(r));

t.test('operations run in order; refusals do not stop the session', async (t) => {
  const seen: string[] = [];
  const { actor, out } = harness(async ({ session, op }) => {
    const n = (session as unknown as { n: number }).n;
    if (op.type === 'deliver' && op.frame === 'bad') return { kind: 'refused', code: 'decrypt_failed' };
    seen.push(op.type === 'send' ? `send@${n}` : `deliver@${n}`);
    return op.type === 'send'
      ? { kind: 'sent', session: fakeSession(n + 1), frame: `f${n}` }
      : { kind: 'received', session: fakeSession(n + 1), plaintext: new Uint8Array([n]) };
  });
  actor.start();
  actor.send({ type: 'SEND', plaintext: new Uint8Array(1) });
  actor.send({ type: 'DELIVER', frame: 'bad' });
  actor.send({ type: 'DELIVER', frame: 'ok' });
  actor.send({ type: 'SEND', plaintext: new Uint8Array(1) });
  for (let i = 0; i < 10; i++) await tick();
  t.same(seen, ['send@0', 'deliver@1', 'send@2'], 'each operation sees the state the previous one committed');
  t.same(out.map((m) => m.type), ['OUTBOUND', 'REFUSED', 'RECEIVED', 'OUTBOUND']);
  t.same(actor.getSnapshot().value, { established: 'ready' });
  actor.stop();
});

t.test('CLOSE waits for the operation in flight, then closes once', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const { actor, out, shutdowns } = harness(async ({ session }) => {
    await gate;
    return { kind: 'sent', session, frame: 'late' };
  });
  actor.start();
  await tick();
  actor.send({ type: 'SEND', plaintext: new Uint8Array(1) });
  actor.send({ type: 'CLOSE', reason: 'bye' });
  await tick();
  t.same(actor.getSnapshot().value, { established: 'working' }, 'still committing the send');
  release();
  for (let i = 0; i < 10; i++) await tick();
  t.same(out.map((m) => m.type), ['OUTBOUND', 'CLOSED'], 'the in-flight frame went out before the close');
  t.same(shutdowns, ['bye']);
  t.equal(actor.getSnapshot().value, 'closed');
});

t.test('the queue is bounded', async (t) => {
  const { actor, out } = harness(() => new Promise(() => {})); // the first op never finishes
  actor.start();
  await tick();
  for (let i = 0; i < MAX_PENDING_OPS + 5; i++) actor.send({ type: 'SEND', plaintext: new Uint8Array(1) });
  t.equal(out.filter((m) => m.type === 'REFUSED' && m.code === 'queue_full').length, 5);
  actor.stop();
});

t.test('a store failure fails the session; a failed start fails it too', async (t) => {
  const a = harness(async () => {
    throw Object.assign(new Error('disk'), { code: 'SQLITE_IOERR' });
  });
  a.actor.start();
  a.actor.send({ type: 'SEND', plaintext: new Uint8Array(1) });
  for (let i = 0; i < 5; i++) await tick();
  t.same(a.out, [{ type: 'FAILED', code: 'SQLITE_IOERR' }]);
  t.equal(a.actor.getSnapshot().value, 'failed');
  const b = harness(async () => ({ kind: 'refused', code: 'x' }), { startFails: true });
  b.actor.start();
  for (let i = 0; i < 5; i++) await tick();
  t.same(b.out, [{ type: 'FAILED', code: 'bad_bundle' }]);
});

t.test('idle timeout closes with reason idle', async (t) => {
  const { actor, out, clock } = harness(async ({ session }) => ({ kind: 'sent', session, frame: 'f' }));
  actor.start();
  await tick();
  clock.increment(49);
  t.same(actor.getSnapshot().value, { established: 'ready' });
  clock.increment(1);
  for (let i = 0; i < 5; i++) await tick();
  t.same(out, [{ type: 'CLOSED', reason: 'idle', by: 'self', frame: 'close-frame' }]);
});

/** A start that finishes when the test says so: how it ends (output or error) is given then. */
function gatedStart() {
  let finish!: (outcome: () => StartOutput) => void;
  const gate = new Promise<() => StartOutput>((r) => (finish = r));
  return { start: async () => (await gate)(), finish };
}

t.test('CLOSE during handshaking waits for start, then closes the started session through shutdown', async (t) => {
  const g = gatedStart();
  const { actor, out, shutdowns } = harness(async ({ session }) => ({ kind: 'sent', session, frame: 'f' }), { start: g.start });
  actor.start();
  actor.send({ type: 'SEND', plaintext: new Uint8Array(1) }); // queued behind the close: dropped
  actor.send({ type: 'CLOSE', reason: 'bye' });
  await tick();
  t.equal(actor.getSnapshot().value, 'handshaking', 'no CLOSED while start may still commit the session');
  t.same(out, []);
  g.finish(() => ({ session: fakeSession(0) }));
  for (let i = 0; i < 10; i++) await tick();
  t.same(shutdowns, ['bye'], 'shutdown deletes what start committed');
  t.same(out, [{ type: 'CLOSED', reason: 'bye', by: 'self', frame: 'close-frame' }]);
  t.equal(actor.getSnapshot().value, 'closed');
});

t.test('CLOSE during handshaking: a first plaintext is reported before CLOSED; a failed start ends closed', async (t) => {
  const a = gatedStart();
  const h = harness(async () => ({ kind: 'refused', code: 'x' }), { start: a.start });
  h.actor.start();
  h.actor.send({ type: 'CLOSE' });
  a.finish(() => ({ session: fakeSession(0), plaintext: new Uint8Array([7]) }));
  for (let i = 0; i < 10; i++) await tick();
  t.same(h.out.map((m) => m.type), ['RECEIVED', 'CLOSED']);
  t.same(h.shutdowns, ['closed']);

  const b = gatedStart();
  const f = harness(async () => ({ kind: 'refused', code: 'x' }), { start: b.start });
  f.actor.start();
  f.actor.send({ type: 'CLOSE', reason: 'bye' });
  b.finish(() => {
    throw Object.assign(new Error('x'), { code: 'bad_bundle' });
  });
  for (let i = 0; i < 10; i++) await tick();
  t.same(f.out, [{ type: 'CLOSED', reason: 'bye', by: 'self' }], 'nothing was started, so nothing to shut down');
  t.same(f.shutdowns, []);
  t.equal(f.actor.getSnapshot().value, 'closed');
});

t.test("a start that opened the peer's close ends closed by the peer, without a shutdown", async (t) => {
  const { actor, out, shutdowns } = harness(async () => ({ kind: 'refused', code: 'x' }), {
    start: async () => ({ session: fakeSession(0), closeReason: 'done' }),
  });
  actor.start();
  actor.send({ type: 'CLOSE', reason: 'bye' });
  for (let i = 0; i < 10; i++) await tick();
  t.same(out, [{ type: 'CLOSED', reason: 'done', by: 'peer' }]);
  t.same(shutdowns, [], 'no close frame back to a peer that closed');
  t.equal(actor.getSnapshot().value, 'closed');
});
