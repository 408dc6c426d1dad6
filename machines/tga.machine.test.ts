import t from 'tap';
import { assign, createActor, fromCallback, setup, SimulatedClock, type AnyActorRef } from 'xstate';
import { acceptsSessions, isReady, tgaMachine, type TgaInput } from './tga.machine.ts';
import { mayRestart, recentRestarts, RESTART_BACKOFF_BASE_MS, RESTART_BACKOFF_MAX_MS, restartDelay } from './supervision.ts';

// A child that counts what it has seen and crashes on 'boom' (throws inside its own action).
const worker = setup({ types: { context: {} as { seen: number } } }).createMachine({
  context: { seen: 0 },
  on: {
    ping: { actions: assign({ seen: ({ context }) => context.seen + 1 }) },
    boom: {
      actions: () => {
        throw Object.assign(new Error('disk on fire'), { code: 'store_unavailable' });
      },
    },
  },
});

// Time is a SimulatedClock: it fires the TGA's delayed restarts and is the TGA's `now`.
function start(input: TgaInput, actors: Record<string, unknown> = {}) {
  const escalations: Array<[string, string]> = [];
  const clock = new SimulatedClock();
  const tga = createActor(
    tgaMachine.provide({
      actors: { auditor: worker, gateway: worker, ...actors },
      actions: { reportEscalation: (_, p) => escalations.push([p.child, p.code]) },
    }),
    { input: { now: () => clock.now(), ...input }, clock },
  ).start();
  const child = (id: string) => tga.system.get(id) as AnyActorRef;
  return { tga, child, escalations, clock };
}

t.test('restart budget arithmetic', async (t) => {
  const policy = { maxRestarts: 2, windowMs: 1000 };
  t.ok(mayRestart([], 0, policy));
  t.ok(mayRestart([100], 500, policy));
  t.notOk(mayRestart([100, 200], 500, policy));
  t.ok(mayRestart([100, 200], 1150, policy), 'a restart leaves the window after windowMs');
  t.same(recentRestarts([100, 200, 900], 1150, policy), [200, 900]);
});

t.test('a crashed child is restarted one-for-one, fresh, under the same systemId, after a backoff', async (t) => {
  const { tga, child, clock } = start({
    children: [
      { id: 'auditor', kind: 'auditor', src: 'auditor' },
      { id: 'gateway-1', kind: 'gateway', src: 'gateway' },
    ],
    policy: { maxRestarts: 3, windowMs: 10_000 },
  });
  child('auditor').send({ type: 'ping' });
  child('gateway-1').send({ type: 'ping' });
  const gatewayBefore = child('gateway-1');
  t.equal(child('auditor').getSnapshot().context.seen, 1);
  clock.increment(50);
  child('auditor').send({ type: 'boom' });
  const snap = tga.getSnapshot();
  t.equal(snap.value, 'running');
  t.equal(snap.context.children.auditor!.restarts, 1);
  t.equal(snap.context.children.auditor!.lastFault, 'store_unavailable');
  t.equal(snap.context.children.auditor!.status, 'starting', 'restarting: not ready');
  t.equal(snap.context.children.auditor!.restartAt, 50 + RESTART_BACKOFF_BASE_MS);
  t.notOk(isReady(snap));
  t.equal(child('auditor'), undefined, 'the crashed auditor is stopped; its successor waits out the backoff');
  clock.increment(RESTART_BACKOFF_BASE_MS - 1);
  t.equal(child('auditor'), undefined, 'not before the backoff is over');
  clock.increment(1);
  t.equal(child('auditor').getSnapshot().status, 'active', 'the new auditor runs');
  t.equal(tga.getSnapshot().context.children.auditor!.status, 'up');
  t.equal(tga.getSnapshot().context.children.auditor!.restartAt, undefined);
  t.equal(child('auditor').getSnapshot().context.seen, 0, 'it starts fresh (state comes back from its stores)');
  t.equal(child('gateway-1'), gatewayBefore, 'the sibling was not restarted');
  t.equal(child('gateway-1').getSnapshot().context.seen, 1);
  t.ok(isReady(tga.getSnapshot()));
  tga.stop();
});

t.test('past the restart budget the TGA escalates and the runtime is not ready', async (t) => {
  const { tga, child, escalations, clock } = start({
    children: [{ id: 'auditor', kind: 'auditor', src: 'auditor' }],
    policy: { maxRestarts: 2, windowMs: 1000 },
  });
  child('auditor').send({ type: 'boom' });
  clock.increment(restartDelay(1));
  child('auditor').send({ type: 'boom' });
  clock.increment(restartDelay(2));
  t.equal(tga.getSnapshot().value, 'running', 'two restarts fit the budget');
  child('auditor').send({ type: 'boom' });
  const snap = tga.getSnapshot();
  t.equal(snap.value, 'escalated');
  t.same(snap.context.escalation, { child: 'auditor', code: 'store_unavailable' });
  t.same(escalations, [['auditor', 'store_unavailable']]);
  t.notOk(isReady(snap));
  t.equal(snap.context.children.auditor!.status, 'down');
  tga.stop();
});

t.test('restarts spread out over time stay within the budget', async (t) => {
  const { tga, child, clock } = start({
    children: [{ id: 'auditor', kind: 'auditor', src: 'auditor' }],
    policy: { maxRestarts: 2, windowMs: 1000 },
  });
  for (let i = 0; i < 10; i++) {
    child('auditor').send({ type: 'boom' });
    clock.increment(600);
  }
  t.equal(tga.getSnapshot().value, 'running');
  t.equal(tga.getSnapshot().context.children.auditor!.restarts, 10);
  tga.stop();
});

t.test('reported faults make the runtime not ready until the child reports up again', async (t) => {
  const { tga } = start({ children: [{ id: 'gateway-1', kind: 'gateway', src: 'gateway' }] });
  tga.send({ type: 'child.fault', id: 'gateway-1', kind: 'gateway', code: 'breaker_open' });
  t.notOk(isReady(tga.getSnapshot()));
  tga.send({ type: 'child.up', id: 'gateway-1', kind: 'gateway' });
  t.ok(isReady(tga.getSnapshot()));
  tga.send({ type: 'tga.stop' });
  t.equal(tga.getSnapshot().status, 'done');
});

t.test('children that report up themselves start as starting (not ready) until child.up', async (t) => {
  const { tga } = start({ children: [{ id: 'gateway', kind: 'gateway', src: 'gateway', reportsUp: true }] });
  t.equal(tga.getSnapshot().context.children.gateway!.status, 'starting');
  t.notOk(isReady(tga.getSnapshot()));
  tga.send({ type: 'child.up', id: 'gateway', kind: 'gateway' });
  t.ok(isReady(tga.getSnapshot()));
  tga.stop();
});

t.test('child.add spawns a supervised child; child.remove stops it and forgets it', async (t) => {
  const { tga, child, clock } = start({ children: [] });
  tga.send({ type: 'child.add', spec: { id: 'session:1', kind: 'session', src: 'auditor' } });
  t.equal(child('session:1').getSnapshot().status, 'active');
  tga.send({ type: 'child.add', spec: { id: 'session:1', kind: 'session', src: 'gateway' } });
  t.equal(Object.keys(tga.getSnapshot().context.specs).length, 1, 'an id in use is not added twice');
  child('session:1').send({ type: 'boom' });
  t.equal(tga.getSnapshot().context.children['session:1']!.restarts, 1, 'an added child is supervised');
  clock.increment(RESTART_BACKOFF_BASE_MS);
  const ref = child('session:1');
  tga.send({ type: 'child.remove', id: 'session:1' });
  t.equal(ref.getSnapshot().status, 'stopped');
  t.same(tga.getSnapshot().context.children, {});
  t.equal(tga.system.get('session:1'), undefined);
  tga.stop();
});

t.test('child.restart is a reload: a fresh child, no restart counted against the budget', async (t) => {
  const { tga, child } = start({ children: [{ id: 'auditor', kind: 'auditor', src: 'auditor' }], policy: { maxRestarts: 0, windowMs: 1000 } });
  child('auditor').send({ type: 'ping' });
  tga.send({ type: 'child.restart', id: 'auditor' });
  t.equal(child('auditor').getSnapshot().context.seen, 0);
  t.equal(tga.getSnapshot().context.children.auditor!.restarts, 0);
  t.same(tga.getSnapshot().context.restartTimes, []);
  t.equal(tga.getSnapshot().value, 'running');
  tga.stop();
});

t.test('breaker transitions and drift reports are recorded and reported', async (t) => {
  const breakers: string[] = [];
  const drift: unknown[] = [];
  const tga = createActor(
    tgaMachine.provide({
      actions: {
        reportBreaker: (_, p) => breakers.push(`${p.name}=${p.state}`),
        reportDrift: (_, p) => drift.push(p.findings),
      },
    }),
    { input: {} },
  ).start();
  tga.send({ type: 'breaker.state', name: 'redis', state: 'open' });
  tga.send({ type: 'breaker.state', name: 'upstream:fs', state: 'half-open' });
  tga.send({ type: 'breaker.state', name: 'redis', state: 'closed' });
  t.same(tga.getSnapshot().context.breakers, { redis: 'closed', 'upstream:fs': 'half-open' });
  t.same(breakers, ['redis=open', 'upstream:fs=half-open', 'redis=closed']);
  const findings = [{ kind: 'tool' as const, subject: 'fs/read', running: 'a', declared: 'b', action: 'reported' as const }];
  tga.send({ type: 'drift.report', findings, digest: 'd1' });
  t.same(tga.getSnapshot().context.drift, { checks: 1, findings, digest: 'd1' });
  t.same(drift, [findings]);
  tga.stop();
});

t.test('the drift monitor is asked on drift.check and its report reaches the TGA', async (t) => {
  let asked = 0;
  const tga = createActor(
    tgaMachine.provide({
      actors: {
        driftMonitor: fromCallback(({ sendBack, receive }) => {
          receive(() => {
            asked++;
            sendBack({ type: 'drift.report', findings: [], digest: `d${asked}` });
          });
        }),
      },
    }),
    { input: {} },
  ).start();
  tga.send({ type: 'drift.check' });
  tga.send({ type: 'drift.check' });
  t.equal(asked, 2);
  t.same(tga.getSnapshot().context.drift, { checks: 2, findings: [], digest: 'd2' });
  tga.stop();
});

t.test('escalated: further crashes keep children down; tga.resume clears the budget and restarts them', async (t) => {
  const { tga, child, escalations, clock } = start({
    children: [
      { id: 'auditor', kind: 'auditor', src: 'auditor' },
      { id: 'gateway', kind: 'gateway', src: 'gateway' },
    ],
    policy: { maxRestarts: 0, windowMs: 1000 },
  });
  child('auditor').send({ type: 'boom' });
  t.equal(tga.getSnapshot().value, 'escalated', 'the crash past the budget escalates at once (no backoff)');
  t.notOk(acceptsSessions(tga.getSnapshot()), 'no new sessions');
  child('gateway').send({ type: 'boom' });
  t.equal(tga.getSnapshot().context.children.gateway!.status, 'down');
  t.equal(escalations.length, 1, 'escalation is reported once');
  tga.send({ type: 'child.add', spec: { id: 'session:x', kind: 'session', src: 'auditor' } });
  t.notOk('session:x' in tga.getSnapshot().context.specs, 'no children are added while escalated');
  clock.increment(5000);
  tga.send({ type: 'tga.resume' });
  const s = tga.getSnapshot();
  t.equal(s.value, 'running');
  t.equal(s.context.escalation, undefined);
  t.same(s.context.restartTimes, []);
  t.ok(isReady(s), 'both children are up again');
  t.equal(child('auditor').getSnapshot().status, 'active');
  t.ok(acceptsSessions(s));
  tga.stop();
});

t.test('the backoff doubles with each restart in the window, up to its cap', async (t) => {
  t.same([1, 2, 3, 4, 5].map(restartDelay), [100, 200, 400, 800, 1600]);
  t.equal(restartDelay(40), RESTART_BACKOFF_MAX_MS);
  t.equal(restartDelay(10_000), RESTART_BACKOFF_MAX_MS, 'no overflow past the cap');
  const { tga, child, clock } = start({ children: [{ id: 'auditor', kind: 'auditor', src: 'auditor' }], policy: { maxRestarts: 5, windowMs: 10_000 } });
  const waits: number[] = [];
  for (let i = 0; i < 3; i++) {
    child('auditor').send({ type: 'boom' });
    let waited = 0;
    while (!child('auditor')) {
      clock.increment(50);
      waited += 50;
    }
    waits.push(waited);
  }
  t.same(waits, [100, 200, 400]);
  clock.increment(10_000);
  child('auditor').send({ type: 'boom' });
  t.equal(tga.getSnapshot().context.children.auditor!.restartAt, clock.now() + 100, 'restarts out of the window no longer count');
  tga.stop();
});

t.test('a dependency away for 300 ms: the backoff outlasts it within the budget, no operator needed', async (t) => {
  // A child whose start fails while its store is away (an audit store failing over).
  let storeUp = true;
  const starts: number[] = [];
  let now = () => 0; // the clock, once start() has returned it
  const { tga, child, clock } = start(
    { children: [{ id: 'auditor', kind: 'auditor', src: 'auditor' }] },
    {
      auditor: fromCallback(() => {
        starts.push(now());
        if (!storeUp) throw Object.assign(new Error('ECONNREFUSED'), { code: 'audit_store_failed' });
      }),
    },
  );
  now = () => clock.now();
  clock.increment(1000);
  // The child's service fails (its actor errors) and its store is away for 350 ms.
  storeUp = false;
  tga.send({ type: 'xstate.error.actor.auditor', error: Object.assign(new Error('breaker open'), { code: 'audit_store_failed' }) } as never);
  for (let ms = 0; ms < 5000; ms += 10) {
    if (ms === 350) storeUp = true;
    clock.increment(10);
  }
  const s = tga.getSnapshot();
  t.equal(s.value, 'running', 'not escalated');
  t.same(starts, [0, 1100, 1300, 1700], 'attempts spaced 100, 200, 400 ms apart');
  t.equal(s.context.children.auditor!.restarts, 3);
  t.ok(isReady(s));
  t.equal(child('auditor').getSnapshot().status, 'active');
  tga.stop();
});

t.test('a reload or a removal during a backoff cancels the pending restart', async (t) => {
  const { tga, child, clock } = start({
    children: [
      { id: 'auditor', kind: 'auditor', src: 'auditor' },
      { id: 'gateway', kind: 'gateway', src: 'gateway' },
    ],
  });
  child('auditor').send({ type: 'boom' });
  child('gateway').send({ type: 'boom' });
  tga.send({ type: 'child.restart', id: 'auditor' });
  const reloaded = child('auditor');
  t.equal(reloaded.getSnapshot().status, 'active', 'a reload starts the child now');
  tga.send({ type: 'child.remove', id: 'gateway' });
  clock.increment(1000);
  t.equal(child('auditor'), reloaded, 'started once: the pending restart did not start another');
  t.equal(child('gateway'), undefined, 'a removed child is not started again');
  t.same(Object.keys(tga.getSnapshot().context.children), ['auditor']);
  t.ok(isReady(tga.getSnapshot()));
  tga.stop();
});
