import t from 'tap';
import { request } from 'node:http';
import { assign, createActor, sendTo, setup } from 'xstate';
import { tgaMachine } from '../../machines/tga.machine.ts';
import { toB64u } from '../encoding/base64url.ts';
import { toHex } from '../encoding/bytes.ts';
import { describeSession, shortDid, SID_PREFIX_CHARS, talosMachines } from './describers.ts';
import { activeStateIds, drawMachine } from './layout.ts';
import { INSPECTOR_PAGE } from './page.ts';
import { compactEvents, createRecorder, MAX_RECORDED_EVENTS } from './recorder.ts';
import { startInspector } from './server.ts';
import { decodeTrace, encodeTrace, TraceError, type TraceEvent } from './trace.ts';

// A small machine with a secret in its context and a payload on its events, to prove
// neither ever reaches the trace.
const SECRET = 'sk-very-secret-value';
const door = setup({
  types: { context: {} as { key: string; opened: number }, events: {} as { type: 'open'; payload: string } | { type: 'close' } },
}).createMachine({
  id: 'door',
  context: { key: SECRET, opened: 0 },
  initial: 'closed',
  states: {
    closed: { on: { open: { target: 'open', actions: assign({ opened: ({ context }) => context.opened + 1 }) } } },
    open: { on: { close: 'closed' } },
    gone: { type: 'final' },
  },
});

t.test('drawMachine lays out every state and transition from the definition', async (t) => {
  const d = drawMachine(door);
  t.same(d.states.map((s) => s.id).sort(), ['door.closed', 'door.gone', 'door.open']);
  t.same(
    d.edges.map((e) => `${e.source}->${e.target}:${e.label}`).sort(),
    ['door.closed->door.open:open', 'door.open->door.closed:close'],
  );
  const closed = d.states.find((s) => s.id === 'door.closed')!;
  const open = d.states.find((s) => s.id === 'door.open')!;
  t.ok(closed.initial && !open.initial);
  t.ok(open.x > closed.x, 'a state reached by a transition is drawn to the right of its source');
  t.ok(d.states.find((s) => s.id === 'door.gone')!.final);
  for (const s of d.states) t.ok(s.x + s.w <= d.width && s.y + s.h <= d.height, `${s.id} fits in the drawing`);
  const tga = drawMachine(tgaMachine);
  t.ok(tga.edges.some((e) => e.label === 'tga.stop' && e.target === 'tga.stopped'));
  t.same(activeStateIds('m', { a: 'b' }), ['m.a', 'm.a.b']);
  t.same(activeStateIds('m', 'x'), ['m.x']);
});

t.test('the recorder keeps states, message types and safe details, never contexts or payloads', async (t) => {
  let clock = 1000;
  const recorder = createRecorder({ now: () => clock++ });
  recorder.register(door, (ctx) => ({ opened: (ctx as { opened: number }).opened }));
  const parent = setup({ actors: { door } }).createMachine({
    id: 'house',
    invoke: { id: 'door', src: 'door', systemId: 'front-door' },
    on: { knock: { actions: sendTo('door', { type: 'open', payload: SECRET }) } },
  });
  const actor = createActor(parent, { inspect: recorder.inspect }).start();
  actor.send({ type: 'knock' });
  actor.stop();
  const events = recorder.events();
  const text = JSON.stringify(events);
  t.notMatch(text, SECRET, 'no secret from a context or an event payload');
  const actors = events.filter((e) => e.kind === 'actor');
  t.ok(actors.some((e) => e.kind === 'actor' && e.machine === 'door' && e.systemId === 'front-door' && e.parent));
  const doorStates = events.filter((e) => e.kind === 'state' && e.value === 'open' && e.status === 'active');
  t.equal(doorStates.length, 1);
  t.same((doorStates[0] as { details?: unknown }).details, { opened: 1 }, 'the describer output is attached');
  t.ok(events.some((e) => e.kind === 'message' && e.type === 'open' && e.from !== undefined), 'actor-to-actor message with its sender');
  t.same(events.map((e) => e.seq), events.map((_, i) => i), 'sequence numbers are dense and ordered');
  t.equal(events[0]!.t, 1000, 'times come from the injected clock');
});

t.test('traces round-trip and malformed ones are refused with a typed error', async (t) => {
  const events: TraceEvent[] = [
    { seq: 0, t: 0, kind: 'actor', actor: 'x:0', machine: 'door' },
    { seq: 1, t: 5, kind: 'state', actor: 'x:0', value: 'closed', status: 'active' },
    { seq: 2, t: 7, kind: 'fault', fault: 'partition', target: 'x:0' },
  ];
  const text = encodeTrace({ format: 'talos-trace', v: 1, source: 'sim:test', seed: 7 }, events);
  const back = decodeTrace(text);
  t.same(back.events, events);
  t.equal(back.header.seed, 7);
  for (const bad of ['', '{"format":"other","v":1}\n', '{"format":"talos-trace","v":1}\n{"kind":"nope","seq":0,"t":0}\n', '{"format":"talos-trace","v":1}\n{oops\n', 'null\n', '[]\n', '{"format":"talos-trace","v":1}\nnull\n', '{"format":"talos-trace","v":1}\n7\n']) {
    t.throws(() => decodeTrace(bad), TraceError);
  }
});

t.test('the server serves the page, a live snapshot, a live stream and trace decoding', async (t) => {
  const recorder = createRecorder();
  const inspector = await startInspector({ recorder, machines: [door] });
  t.teardown(() => inspector.close());
  const page = await (await fetch(inspector.url)).text();
  t.match(page, '<title>Talos inspector</title>');
  t.notMatch(page, /https?:\/\/(?!www\.w3\.org)/, 'the page loads nothing from the network');

  const events: string[] = [];
  const controller = new AbortController();
  const stream = await fetch(new URL('/api/stream', inspector.url), { signal: controller.signal });
  const reader = stream.body!.getReader();
  const actor = createActor(door, { inspect: recorder.inspect }).start();
  actor.send({ type: 'open', payload: 'x' });
  const decoder = new TextDecoder();
  while (!events.join('').includes('"value":"open"')) {
    const { value, done } = await reader.read();
    if (done) break;
    events.push(decoder.decode(value));
  }
  controller.abort();
  t.match(events.join(''), '"value":"open"', 'a state change is streamed as it happens');
  actor.stop();

  const snapshot = (await (await fetch(new URL('/api/snapshot', inspector.url))).json()) as {
    mode: string;
    events: TraceEvent[];
    drawings: Record<string, unknown>;
  };
  t.equal(snapshot.mode, 'live');
  t.ok(snapshot.events.some((e) => e.kind === 'state' && e.value === 'open'));
  t.ok(snapshot.drawings.door, 'the drawing of every known machine is served');

  const trace = encodeTrace({ format: 'talos-trace', v: 1, source: 'sim:x' }, [{ seq: 0, t: 0, kind: 'actor', actor: 'a' }]);
  const decoded = await fetch(new URL('/api/decode-trace', inspector.url), { method: 'POST', body: trace });
  t.equal(decoded.status, 200);
  t.equal(((await decoded.json()) as { events: unknown[] }).events.length, 1);
  // DNS rebinding: only loopback names (and the bind host) are answered.
  const port = new URL(inspector.url).port;
  const statusFor = (host: string) =>
    new Promise<number>((done, fail) =>
      request({ host: '127.0.0.1', port, path: '/api/snapshot', headers: { host } }, (res) => {
        res.resume();
        done(res.statusCode!);
      }).on('error', fail).end(),
    );
  for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `LOCALHOST:${port}`, `[::1]:${port}`, 'localhost']) {
    t.equal(await statusFor(host), 200, `Host: ${host}`);
  }
  for (const host of [`attacker.example:${port}`, 'attacker.example', `127.0.0.1.attacker.example:${port}`, `attacker.example@127.0.0.1:${port}`]) {
    t.equal(await statusFor(host), 403, `Host: ${host}`);
  }
  const refused = await fetch(new URL('/api/decode-trace', inspector.url), { method: 'POST', body: 'nonsense' });
  t.equal(refused.status, 400);
  t.match(((await refused.json()) as { error: string }).error, 'not valid JSON');
});

t.test('Talos describers publish identifiers and counters, never keys; the inspector registers them', async (t) => {
  const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
  const sid = Uint8Array.from({ length: 16 }, (_, i) => i * 7);
  const secrets = [bytes(32, 1), bytes(32, 2), bytes(32, 3), bytes(32, 4)];
  const context = {
    queue: [{ type: 'send', plaintext: new TextEncoder().encode(SECRET) }],
    closeRequested: null,
    failure: null,
    session: {
      sid,
      role: 'initiator',
      mode: 'pqxdh',
      peer: 'did:talos:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK',
      ratchet: { rk: secrets[0], dhsSecret: secrets[1], cks: secrets[2], ckr: secrets[3], ns: 3, nr: 2, pn: 1, skipped: [{}, {}] },
    },
  };
  const details = describeSession(context);
  const text = JSON.stringify(details);
  for (const s of secrets) {
    t.notMatch(text, toB64u(s), 'no key in any encoding');
    t.notMatch(text, toHex(s));
  }
  t.notMatch(text, SECRET, 'no queued plaintext');
  t.notMatch(text, toB64u(sid), 'not the whole session id');
  t.equal(details.sid, `${toB64u(sid).slice(0, SID_PREFIX_CHARS)}…`);
  t.match(details, { role: 'initiator', mode: 'pqxdh', queued: 1, 'sent (chain)': 3, 'received (chain)': 2, 'skipped keys': 2 });
  t.equal(details.peer, shortDid(context.session.peer));
  t.same(describeSession(null), {}, 'a context of another shape describes nothing');
  t.same(describeSession({ queue: 5 }), {}, 'and never throws');

  const recorder = createRecorder();
  const inspector = await startInspector({ recorder });
  t.teardown(() => inspector.close());
  for (const { machine } of talosMachines()) t.ok(recorder.describes(machine.id), `${machine.id} is described by default`);
});

t.test('a long run keeps every actor and its latest state when old events are compacted', async (t) => {
  const recorder = createRecorder();
  const actor = createActor(door, { inspect: recorder.inspect }).start();
  for (let i = 0; i < MAX_RECORDED_EVENTS; i++) actor.send({ type: i % 2 ? 'close' : 'open', payload: 'x' });
  const events = recorder.events();
  t.ok(events.length <= MAX_RECORDED_EVENTS + 2, `bounded (${events.length})`);
  t.ok(events.some((e) => e.kind === 'actor' && e.machine === 'door'), 'the actor announcement survives');
  const states = events.filter((e) => e.kind === 'state');
  t.equal((states.at(-1) as { value: unknown }).value, actor.getSnapshot().value, 'the latest state is the current one');
  const history: TraceEvent[] = [
    { seq: 0, t: 0, kind: 'actor', actor: 'a' },
    { seq: 1, t: 0, kind: 'actor', actor: 'done' },
    { seq: 2, t: 0, kind: 'state', actor: 'a', value: 'x', status: 'active' },
    { seq: 3, t: 0, kind: 'state', actor: 'done', value: null, status: 'done' },
    { seq: 4, t: 0, kind: 'message', to: 'a', type: 'm' },
    { seq: 5, t: 0, kind: 'state', actor: 'a', value: 'y', status: 'active' },
    ...Array.from({ length: 4 }, (_, i): TraceEvent => ({ seq: 6 + i, t: 0, kind: 'message', to: 'a', type: 'n' })),
  ];
  t.same(compactEvents(history, 6).map((e) => e.seq), [0, 5, 6, 7, 8, 9], 'a live actor and its latest state, then the newest events');
  actor.stop();
});

t.test('short-lived actors (one promise per operation) do not grow the kept events past the bound', async (t) => {
  const recorder = createRecorder();
  const root = { sessionId: 'x:0', src: 'root' };
  const live = { sessionId: 'x:live', _parent: root, src: 'session' };
  const snapshot = (actorRef: object, status: string) => recorder.inspect({ type: '@xstate.snapshot', actorRef, snapshot: { status } } as never);
  recorder.inspect({ type: '@xstate.actor', actorRef: live } as never);
  snapshot(live, 'active');
  let most = 0;
  for (let i = 1; i <= MAX_RECORDED_EVENTS; i++) {
    const op = { sessionId: `x:${i}`, _parent: root, src: 'process' };
    recorder.inspect({ type: '@xstate.actor', actorRef: op } as never);
    snapshot(op, 'active');
    snapshot(op, 'done');
    most = Math.max(most, recorder.events().length);
  }
  t.ok(most <= MAX_RECORDED_EVENTS, `never more than the bound (${most})`);
  const events = recorder.events();
  t.ok(events.some((e) => e.kind === 'actor' && e.actor === 'x:live'), 'a live actor from long ago is still shown');
  t.ok(events.some((e) => e.kind === 'state' && e.actor === `x:${MAX_RECORDED_EVENTS}`), 'the newest events are kept');
  t.notOk(events.some((e) => e.kind === 'actor' && e.actor === 'x:1'), 'finished actors from long ago are gone');

  // The page compacts its live copy the same way (its compact() run here on the same events).
  const source = /const MAX_EVENTS[^\n]*\nfunction compact\(\) \{[\s\S]*?\n\}\n/.exec(INSPECTOR_PAGE)![0];
  const pageCompact = new Function('events', 'cursor', `${source}; compact(); return events;`) as (e: TraceEvent[], c: number) => TraceEvent[];
  const many = [...events, ...events.slice(0, MAX_RECORDED_EVENTS + 1 - events.length)].map((e, seq) => ({ ...e, seq }));
  t.same(pageCompact(many, 0).map((e) => e.seq), compactEvents(many, Math.floor(MAX_RECORDED_EVENTS * 0.75)).map((e) => e.seq), 'the page keeps what the recorder keeps');
});
