import t from 'tap';
import { decodeTrace } from '../runtime/inspect/trace.ts';
import { replayCommand, runScenario } from './runner.ts';
import { traceHash } from './trace-writer.ts';

// The same seed, run twice in one process, gives a byte-identical trace.
for (const name of ['gateway-crash', 'replay-tamper', 'kek-rotation', 'swarm']) {
  t.test(`${name}: same seed, same trace bytes`, async (t) => {
    const a = await runScenario(name, 42);
    const b = await runScenario(name, 42);
    t.ok(a.ok, a.violation ? `${a.violation.invariant}: ${a.violation.detail}` : 'passes');
    t.equal(a.trace, b.trace, 'byte-identical');
    t.equal(a.traceHash, traceHash(a.trace));
    t.equal(a.traceHash, b.traceHash);
    t.comment(`${name} seed 42 trace sha256 ${a.traceHash}`);
    const other = await runScenario(name, 43);
    t.not(other.traceHash, a.traceHash, 'another seed, another run');
    const { header, events } = decodeTrace(a.trace);
    t.same(header, { format: 'talos-trace', v: 1, source: `sim:${name}`, seed: 42 });
    t.ok(events.some((e) => e.kind === 'message'), 'messages traced');
    t.ok(events.some((e) => e.kind === 'state' && e.actor === 'tga'), 'the TGA actor states traced');
    t.ok(events.every((e, i) => e.seq === i && (i === 0 || e.t >= events[i - 1]!.t)), 'seq in order, time never goes back');
  });
}

t.test('faults and the first violation are in the trace', async (t) => {
  const r = await runScenario('gateway-crash', 1);
  const { events } = decodeTrace(r.trace);
  t.ok(events.some((e) => e.kind === 'fault' && e.fault === 'crash' && e.target === 'gateway'));
  t.ok(events.some((e) => e.kind === 'fault' && e.fault === 'restart' && e.target === 'gateway'));
  const broken = await runScenario('gateway-crash', 1, { __broken: 'forward-before-audit' });
  const last = decodeTrace(broken.trace).events.at(-1)!;
  t.match(last, { kind: 'fault', fault: 'violation', target: 'audit-before-forward' });
});

t.test('both crypto providers give the same run, byte for byte', async (t) => {
  const node = await runScenario('partition', 9, { crypto: 'node' });
  const noble = await runScenario('partition', 9, { crypto: 'noble' });
  t.ok(node.ok);
  t.equal(noble.traceHash, node.traceHash);
});

t.test('the real clock is untouched after a run', async (t) => {
  const before = Date.now();
  await runScenario('redis-outage', 3);
  t.ok(Math.abs(Date.now() - before) < 10 * 60_000, 'Date.now() is real time again');
  await new Promise((r) => setTimeout(r, 1)); // a real timer fires
});

t.test('an observer sees the run\'s world before the scenario sets up, and watching changes nothing', async (t) => {
  const plain = await runScenario('partition', 7);
  let seed: number | undefined;
  let nodesAtObserve = -1;
  let x25519Calls = 0;
  const watched = await runScenario('partition', 7, {
    observe: (world) => {
      seed = world.options.seed;
      nodesAtObserve = world.nodes.size;
      const dh = world.crypto.x25519.bind(world.crypto);
      world.crypto.x25519 = (secret, pub) => {
        x25519Calls++;
        return dh(secret, pub);
      };
    },
  });
  t.equal(seed, 7);
  t.equal(nodesAtObserve, 0, 'before setup: no nodes yet');
  t.ok(x25519Calls > 0, 'the wrapped provider is the one the run uses');
  t.equal(watched.traceHash, plain.traceHash, 'same trace with and without the observer');
});

t.test('the replay command carries every option that changes the run', async (t) => {
  t.equal(replayCommand('partition', 9), 'talos sim run partition --seed 9');
  t.equal(replayCommand('partition', 9, { __broken: 'skip-sub-check', crypto: 'noble' }), 'talos sim run partition --seed 9 --broken skip-sub-check --crypto noble');
  t.equal((await runScenario('partition', 9, { crypto: 'noble' })).command, 'talos sim run partition --seed 9 --crypto noble');
});
