import t from 'tap';
import { assign, createActor, setup, type AnyActorRef } from 'xstate';
import { isReady, tgaMachine, type TgaInput } from './tga.machine.ts';
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
