import t from 'tap';
import { spawnSync } from 'node:child_process';
import type { InspectionEvent } from 'xstate';
import { createRuntime } from './index.ts';

t.test('createRuntime starts the TGA as the root and reports it through inspect', async (t) => {
  const seen: InspectionEvent[] = [];
  const runtime = await createRuntime({ crypto: 'noble', inspect: (e) => seen.push(e) });
  t.equal(runtime.tga.getSnapshot().value, 'running');
  t.equal(runtime.tga.system.get('tga'), runtime.tga, 'the root is addressable by systemId');
  t.ok(runtime.ready());
  t.equal(runtime.crypto.name, 'noble');
  t.ok(seen.some((e) => e.type === '@xstate.actor' && e.actorRef === runtime.tga), 'inspect saw the root actor');
  await runtime.stop();
  t.equal(runtime.tga.getSnapshot().status, 'done');
  t.notOk(runtime.ready());
  await runtime.stop(); // idempotent
});

t.test('a child fault makes the runtime not ready', async (t) => {
  const runtime = await createRuntime();
  runtime.tga.send({ type: 'child.up', id: 'auditor', kind: 'auditor' });
  t.ok(runtime.ready());
  runtime.tga.send({ type: 'child.fault', id: 'auditor', kind: 'auditor', code: 'audit_store_down' });
  t.notOk(runtime.ready());
  await runtime.stop();
});

t.test('a process that creates and stops a runtime exits on its own (no leaked handles)', async (t) => {
  const script = `
    import { createRuntime } from './runtime/index.ts';
    const before = process.getActiveResourcesInfo();
    const r = await createRuntime();
    await r.stop();
    console.log(JSON.stringify({ before, after: process.getActiveResourcesInfo() }));
  `;
  const out = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: new URL('..', import.meta.url).pathname,
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.equal(out.status, 0, out.stderr);
  const { before, after } = JSON.parse(out.stdout.trim().split('\n').pop()!);
  t.same(after, before, 'stop leaves no handle that was not there before the runtime');
});

t.test('the inspector option serves the live page for this runtime and closes with it', async (t) => {
  const runtime = await createRuntime({ inspector: { port: 0 } });
  t.ok(runtime.inspectorUrl);
  const snapshot = (await (await fetch(new URL('/api/snapshot', runtime.inspectorUrl))).json()) as {
    events: Array<{ kind: string; systemId?: string }>;
    drawings: Record<string, unknown>;
  };
  t.ok(snapshot.events.some((e) => e.kind === 'state'), 'the TGA state is in the live trace');
  t.ok(snapshot.drawings.tga, 'the TGA machine is drawable');
  await runtime.stop();
  await t.rejects(fetch(runtime.inspectorUrl!), 'the inspector server is closed with the runtime');
});
