import t, { type Test } from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UpstreamActor } from './index.ts';
import { DEFAULTS, type UpstreamConfig } from '../../runtime/config/config.ts';
import { FilePinStore } from '../../runtime/mcp/pinning.ts';
import { UpstreamConnection, transportFor } from '../../runtime/mcp/upstream-connection.ts';

const dir = mkdtempSync(join(tmpdir(), 'talos-upstream-lifecycle-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const server = fileURLToPath(new URL('./fixtures/lifecycle-server.mjs', import.meta.url));

function config(name: string, mode: string, file: string): UpstreamConfig {
  return { name, transport: 'stdio', command: 'node', args: [server, mode, file], env: {}, toolPrefix: '' };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function until(check: () => boolean, ms: number): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(25)) if (check()) return true;
  return check();
}

/** The slow-init server writes its pid before it waits: the child exists, initialize is pending. */
async function pidOf(t: Test, file: string): Promise<number> {
  t.ok(await until(() => existsSync(file) && readFileSync(file, 'utf8') !== '', 10_000), 'the slow server started');
  return Number(readFileSync(file, 'utf8'));
}

t.test('a server that dies while its lists are read is not left ready: the actor retries and reconnects', async (t) => {
  const marker = join(dir, 'crashed');
  let readyWithoutConnection = false;
  const states: string[] = [];
  const u: UpstreamActor = new UpstreamActor({
    config: config('crashy', 'crash-once', marker),
    breaker: DEFAULTS.breaker,
    pins: new FilePinStore(),
    onStateChange: (s) => {
      states.push(s);
      if (s === 'ready' && u.pid === undefined) readyWithoutConnection = true;
    },
  });
  t.teardown(() => u.stop());
  // The first attempt lists tools, then the server exits on prompts/list.
  await t.rejects(u.start(), { code: 'upstream_unavailable' }, 'the first connection fails instead of reporting ready');
  t.ok(existsSync(marker), 'the server did die on prompts/list');
  t.not(u.state, 'ready');
  t.ok(await until(() => u.state === 'ready', 20_000), 'the backoff retry connects again');
  t.notOk(readyWithoutConnection, 'never ready without a connection');
  t.same(states.filter((s, i) => s !== states[i - 1]).slice(0, 4), ['connecting', 'backoff', 'connecting', 'ready'], 'one failure, one retry');
  t.ok(alive(u.pid!), 'the new server runs');
  const res = await u.call('tools/call', { name: 'echo', arguments: {} });
  t.same(res.content, [{ type: 'text', text: 'ok' }]);
});

t.test('stopping an upstream while it connects kills the server it was starting', async (t) => {
  const pidFile = join(dir, 'slow-actor.pid');
  const u = new UpstreamActor({ config: config('slow', 'slow-init', pidFile), breaker: DEFAULTS.breaker, pins: new FilePinStore() });
  const started = u.start().catch((err: unknown) => err);
  const pid = await pidOf(t, pidFile);
  t.teardown(() => void (alive(pid) && process.kill(pid, 'SIGKILL')));
  t.equal(u.state, 'connecting');
  await u.stop();
  t.equal(u.state, 'stopped');
  t.ok(await until(() => !alive(pid), 8_000), 'the child process has exited');
  t.type(await started, Error, 'start() reports the upstream did not start');
});

t.test('an upstream stopped as soon as it starts never leaves a server running', async (t) => {
  const pidFile = join(dir, 'instant-stop.pid');
  const cfg = config('slow', 'slow-init', pidFile);
  const { factory } = transportFor(cfg);
  let spawned = 0;
  const u = new UpstreamActor({ config: cfg, transport: () => (spawned++, factory()), breaker: DEFAULTS.breaker, pins: new FilePinStore() });
  const started = u.start().catch((err: unknown) => err);
  // Stopped before connect reached open(): only the aborted signal keeps open() from spawning
  // after the disconnect already ran.
  await u.stop();
  t.type(await started, Error);
  await sleep(200);
  if (spawned > 0) {
    const pid = await pidOf(t, pidFile);
    t.teardown(() => void (alive(pid) && process.kill(pid, 'SIGKILL')));
    t.ok(await until(() => !alive(pid), 8_000), 'the server started after the stop has exited');
  }
  t.equal(u.state, 'stopped');
});

t.test('close() during open() ends the client being opened; open() throws upstream_closed', async (t) => {
  const pidFile = join(dir, 'slow-conn.pid');
  const conn = new UpstreamConnection('slow', transportFor(config('slow', 'slow-init', pidFile)).factory);
  const opened = conn.open().then(
    () => undefined,
    (err: unknown) => err,
  );
  const pid = await pidOf(t, pidFile);
  t.teardown(() => void (alive(pid) && process.kill(pid, 'SIGKILL')));
  await conn.close();
  t.notOk(alive(pid), 'close() waited for the child to exit');
  t.match(await opened, { code: 'upstream_closed' });
  t.notOk(conn.connected);
});

t.test('open() with an aborted signal ends the client being opened', async (t) => {
  const pidFile = join(dir, 'slow-abort.pid');
  const conn = new UpstreamConnection('slow', transportFor(config('slow', 'slow-init', pidFile)).factory);
  const abort = new AbortController();
  const opened = conn.open(abort.signal).then(
    () => undefined,
    (err: unknown) => err,
  );
  const pid = await pidOf(t, pidFile);
  t.teardown(() => void (alive(pid) && process.kill(pid, 'SIGKILL')));
  abort.abort();
  t.match(await opened, { code: 'upstream_closed' });
  t.ok(await until(() => !alive(pid), 8_000), 'the child process has exited');
  t.notOk(conn.connected);
});

t.test('a request that keeps reporting progress ends at its total deadline and is cancelled upstream', async (t) => {
  const cancelFile = join(dir, 'cancelled.txt');
  const maxProgressRequestMs = 400;
  const u = new UpstreamActor({
    config: config('chatty', 'progress', cancelFile),
    // A per-request timeout shorter than the deadline: only the progress (which restarts it) keeps the request open.
    breaker: { ...DEFAULTS.breaker, timeoutMs: 200 },
    pins: new FilePinStore(),
    maxProgressRequestMs,
  });
  t.teardown(() => u.stop());
  await u.start();
  let progress = 0;
  const begun = Date.now();
  const outcome = await Promise.race([
    u.call('tools/call', { name: 'forever', arguments: {} }, undefined, () => void progress++).then(
      () => 'answered',
      (err: unknown) => err,
    ),
    sleep(10_000).then(() => 'still open after 10 s'),
  ]);
  t.match(outcome, { code: 'upstream_unavailable', message: /total timeout/ }, 'a timeout error');
  t.ok(Date.now() - begun >= maxProgressRequestMs, 'not before the deadline');
  t.ok(progress > 5, `progress was relayed meanwhile (${progress})`);
  t.ok(await until(() => existsSync(cancelFile), 5_000), 'the server got notifications/cancelled');
  t.match(readFileSync(cancelFile, 'utf8'), /total timeout/);
  const res = await u.call('tools/call', { name: 'echo', arguments: {} });
  t.same(res.content, [{ type: 'text', text: 'ok' }], 'the upstream still serves');
});
