import t from 'tap';
import { assign, createActor, fromCallback, setup, type AnyActorRef } from 'xstate';
import { acceptsSessions, isReady, tgaMachine, type TgaInput } from './tga.machine.ts';
import { mayRestart, recentRestarts } from './supervision.ts';

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

function start(input: TgaInput) {
  const escalations: Array<[string, string]> = [];
  const tga = createActor(
    tgaMachine.provide({
      actors: { auditor: worker, gateway: worker },
      actions: { reportEscalation: (_, p) => escalations.push([p.child, p.code]) },
    }),
    { input },
  ).start();
  const child = (id: string) => tga.system.get(id) as AnyActorRef;
  return { tga, child, escalations };
}

t.test('restart budget arithmetic', async (t) => {
  const policy = { maxRestarts: 2, windowMs: 1000 };
  t.ok(mayRestart([], 0, policy));
  t.ok(mayRestart([100], 500, policy));
  t.notOk(mayRestart([100, 200], 500, policy));
  t.ok(mayRestart([100, 200], 1150, policy), 'a restart leaves the window after windowMs');
  t.same(recentRestarts([100, 200, 900], 1150, policy), [200, 900]);
});

t.test('a crashed child is restarted one-for-one, fresh, under the same systemId', async (t) => {
  let now = 0;
  const { tga, child } = start({
    children: [
      { id: 'auditor', kind: 'auditor', src: 'auditor' },
      { id: 'gateway-1', kind: 'gateway', src: 'gateway' },
    ],
    policy: { maxRestarts: 3, windowMs: 10_000 },
    now: () => now,
  });
  child('auditor').send({ type: 'ping' });
  child('gateway-1').send({ type: 'ping' });
  const gatewayBefore = child('gateway-1');
  t.equal(child('auditor').getSnapshot().context.seen, 1);
  now = 50;
  child('auditor').send({ type: 'boom' });
  const snap = tga.getSnapshot();
  t.equal(snap.value, 'running');
  t.equal(snap.context.children.auditor!.restarts, 1);
  t.equal(snap.context.children.auditor!.lastFault, 'store_unavailable');
  t.equal(child('auditor').getSnapshot().status, 'active', 'the new auditor runs');
  t.equal(child('auditor').getSnapshot().context.seen, 0, 'it starts fresh (state comes back from its stores)');
  t.equal(child('gateway-1'), gatewayBefore, 'the sibling was not restarted');
  t.equal(child('gateway-1').getSnapshot().context.seen, 1);
  t.ok(isReady(tga.getSnapshot()));
  tga.stop();
});

t.test('past the restart budget the TGA escalates and the runtime is not ready', async (t) => {
  let now = 0;
  const { tga, child, escalations } = start({
    children: [{ id: 'auditor', kind: 'auditor', src: 'auditor' }],
    policy: { maxRestarts: 2, windowMs: 1000 },
    now: () => now,
  });
  child('auditor').send({ type: 'boom' });
  now = 10;
  child('auditor').send({ type: 'boom' });
  t.equal(tga.getSnapshot().value, 'running', 'two restarts fit the budget');
  now = 20;
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
  let now = 0;
  const { tga, child } = start({
    children: [{ id: 'auditor', kind: 'auditor', src: 'auditor' }],
    policy: { maxRestarts: 2, windowMs: 1000 },
    now: () => now,
  });
  for (let i = 0; i < 10; i++) {
    now += 600;
    child('auditor').send({ type: 'boom' });
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
  const { tga, child } = start({ children: [] });
  tga.send({ type: 'child.add', spec: { id: 'session:1', kind: 'session', src: 'auditor' } });
  t.equal(child('session:1').getSnapshot().status, 'active');
  tga.send({ type: 'child.add', spec: { id: 'session:1', kind: 'session', src: 'gateway' } });
  t.equal(Object.keys(tga.getSnapshot().context.specs).length, 1, 'an id in use is not added twice');
  child('session:1').send({ type: 'boom' });
  t.equal(tga.getSnapshot().context.children['session:1']!.restarts, 1, 'an added child is supervised');
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
  let now = 0;
  const { tga, child, escalations } = start({
    children: [
      { id: 'auditor', kind: 'auditor', src: 'auditor' },
      { id: 'gateway', kind: 'gateway', src: 'gateway' },
    ],
    policy: { maxRestarts: 0, windowMs: 1000 },
    now: () => now,
  });
  child('auditor').send({ type: 'boom' });
  t.equal(tga.getSnapshot().value, 'escalated');
  t.notOk(acceptsSessions(tga.getSnapshot()), 'no new sessions');
  child('gateway').send({ type: 'boom' });
  t.equal(tga.getSnapshot().context.children.gateway!.status, 'down');
  t.equal(escalations.length, 1, 'escalation is reported once');
  tga.send({ type: 'child.add', spec: { id: 'session:x', kind: 'session', src: 'auditor' } });
  t.notOk('session:x' in tga.getSnapshot().context.specs, 'no children are added while escalated');
  now = 5000;
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
