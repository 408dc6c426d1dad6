import t from 'tap';
import { createActor, fromPromise } from 'xstate';
import { gatewayMachine } from './gateway.machine.ts';

const flush = () => new Promise((r) => setImmediate(r));

function run(start: () => Promise<void>) {
  const reports: string[] = [];
  let stopped = 0;
  const actor = createActor(
    gatewayMachine.provide({
      actors: { startServices: fromPromise(start), stopServices: fromPromise(async (): Promise<void> => { stopped++; }) },
      actions: {
        reportUp: () => void reports.push('up'),
        reportFault: (_, p) => void reports.push(`fault:${p.code}`),
        reportDrift: (_, p) => void reports.push(`drift:${p.upstream}/${p.tool}`),
      },
    }),
  );
  actor.start();
  return { actor, reports, stopped: () => stopped };
}

t.test('starts, counts sessions and drift, drains on stop', async (t) => {
  const { actor, reports, stopped } = run(async () => {});
  await flush();
  t.equal(actor.getSnapshot().value, 'serving');
  actor.send({ type: 'gateway.session_opened' });
  actor.send({ type: 'gateway.session_opened' });
  actor.send({ type: 'gateway.session_closed' });
  actor.send({ type: 'gateway.handshake_refused', code: 'handshake_replay' });
  actor.send({ type: 'gateway.drift', upstream: 'fs', tool: 'read' });
  t.match(actor.getSnapshot().context, { sessions: 1, sessionsOpened: 2, refusedHandshakes: 1, drift: 1 });
  actor.send({ type: 'gateway.stop' });
  await flush();
  t.equal(actor.getSnapshot().status, 'done');
  t.equal(stopped(), 1);
  t.same(reports, ['up', 'drift:fs/read']);
});

t.test('a failed start is reported, and stop still releases what was started', async (t) => {
  const { actor, reports, stopped } = run(async () => {
    throw new Error('port in use');
  });
  await flush();
  t.equal(actor.getSnapshot().value, 'failed');
  t.equal(actor.getSnapshot().context.error, 'port in use');
  t.same(reports, ['fault:gateway_start_failed']);
  actor.send({ type: 'gateway.session_opened' });
  t.equal(actor.getSnapshot().context.sessions, 0, 'no sessions while failed');
  actor.send({ type: 'gateway.stop' });
  await flush();
  t.equal(stopped(), 1);
});
