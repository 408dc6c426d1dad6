import t from 'tap';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { chromium, type Page } from 'playwright-core';
import { runDemo } from '../../actors/gateway/demo.ts';
import { runCli } from '../cli/main.ts';
import { startLiveInspector } from './live.ts';
import { decodeTrace, encodeTrace } from './trace.ts';

/**
 * The inspector in a real browser: Debian's Chromium (never a downloaded one) driven by
 * playwright-core opens the page while `talos demo` runs with the inspector, watches the
 * agent's session actor through the calls, saves screenshots, then opens the recorded trace
 * through the page's file input and steps through it backwards and forwards.
 * Artifacts: $TALOS_ARTIFACTS_DIR or .tap/artifacts/inspector/ (gitignored).
 */
/** The little of the DOM the page functions use (the project compiles without the DOM lib). */
interface PageElement {
  textContent: string | null;
  value: string;
  getAttribute(name: string): string | null;
  click(): void;
  dispatchEvent(event: unknown): boolean;
}
declare const document: { getElementById(id: string): PageElement | null; querySelectorAll(selector: string): Iterable<PageElement> };
declare const Event: new (type: string) => unknown;

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = resolve(process.env.TALOS_ARTIFACTS_DIR ?? join(import.meta.dirname, '../../.tap/artifacts/inspector'));
const WAIT_MS = 20_000;

/** Active state ids drawn highlighted in the first card of a machine (sorted, parents first). */
const activeStates = async (page: Page, machine: string) =>
  (await page.$$eval(`.card[data-machine="${machine}"] g.node.active`, (nodes) => nodes.map((n) => n.getAttribute('data-state') ?? ''))).sort();
/** The innermost highlighted state. */
const leafState = async (page: Page, machine: string) => (await activeStates(page, machine)).sort((a, b) => a.split('.').length - b.split('.').length).at(-1);

/** Waits until the card of `machine` (the selected one first) highlights `state`. */
async function waitForState(page: Page, machine: string, state: string): Promise<void> {
  await page.waitForFunction(
    ([m, s]) => [...document.querySelectorAll(`.card[data-machine="${m}"] g.node.active`)].some((n) => n.getAttribute('data-state') === s),
    [machine, state] as const,
    { timeout: WAIT_MS },
  );
}

t.test('the live inspector follows a demo run and steps through its trace', async (t) => {
  mkdirSync(ARTIFACTS, { recursive: true });
  const live = await startLiveInspector();
  t.teardown(() => live.close());
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  t.teardown(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(e.message));
  // Offline: the page must never ask for anything but its own server.
  const foreign: string[] = [];
  page.on('request', (r) => {
    if (!r.url().startsWith(live.url)) foreign.push(r.url());
  });
  await page.goto(live.url);
  await page.waitForFunction(() => document.getElementById('mode')?.textContent === 'live', undefined, { timeout: WAIT_MS });

  const seen: Array<{ call: string; messages: number; events: number }> = [];
  const result = await runDemo(() => {}, {
    inspect: live.inspect,
    beforeCall: async (call) => {
      // Between calls the agent's session is established and idle, the gateway serving.
      await page.click('#tree .actor:has-text("session")');
      await waitForState(page, 'session', 'session.established.ready');
      await waitForState(page, 'gateway', 'gateway.serving');
      t.same(await activeStates(page, 'session'), ['session.established', 'session.established.ready'], `before "${call}": established, ready`);
      const firstCard = await page.$eval('#cards .card', (c) => c.getAttribute('data-machine'));
      t.equal(firstCard, 'session', 'the selected actor is shown first');
      const messages = await page.$$eval('#seq g.msg', (g) => g.length);
      const events = Number((await page.textContent('#pos'))!.split(' / ')[1]);
      seen.push({ call, messages, events });
      if (call === 'read private/salaries.csv') await page.screenshot({ path: join(ARTIFACTS, 'inspector-live.png') });
    },
  });
  t.same(
    result.calls.map((c) => c.outcome),
    ['allowed', 'allowed', 'refused', 'refused', 'refused'],
    'through the inspectable session actor the demo gets the same decisions as without it',
  );
  t.ok(result.proof.verified, 'and its inclusion proof verifies');
  t.equal(seen.length, result.calls.length, 'the page was checked before every call');
  for (let i = 1; i < seen.length; i++) {
    t.ok(seen[i]!.events > seen[i - 1]!.events, `more events shown after "${seen[i - 1]!.call}"`);
  }
  t.ok(seen.every((s) => s.messages > 0), 'the sequence view shows messages');
  const lanes = await page.$$eval('#seq > text', (ts) => ts.map((x) => x.textContent));
  t.ok(lanes.includes('session') && lanes.includes('gateway') && lanes.includes('auditor'), `sequence lanes: ${lanes.join(', ')}`);

  // After the demo: the client closed its session and the gateway stopped.
  await waitForState(page, 'session', 'session.closed');
  await waitForState(page, 'gateway', 'gateway.stopped');
  const details = await page.textContent('.card[data-machine="gateway"] .details');
  t.match(details, 'sessions opened: 1', 'safe per-actor details are shown');
  const body = await page.textContent('body');
  t.notMatch(body, result.checkpoint.split('\n')[2]!, 'no audit root or other payload reaches the page');

  // Replay: save the recorded run as a trace file and open it through the page's file input.
  const traceFile = join(ARTIFACTS, 'inspector-live.trace.jsonl');
  writeFileSync(traceFile, live.trace());
  await page.setInputFiles('#file', traceFile);
  await page.waitForFunction(() => document.getElementById('mode')?.textContent === 'trace: live', undefined, { timeout: WAIT_MS });
  t.equal(await page.textContent('#pos'), `0 / ${live.recorder.events().length}`, 'a trace opens at its start');

  // Step forwards with ▶ and record the session's highlighted state each time it changes.
  const total = live.recorder.events().length;
  // One round trip: the page's own ▶ button is clicked for every event, the highlighted
  // session state read after each click.
  const path = await page.evaluate((n) => {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      document.getElementById('fwd')!.click();
      const ids = [...document.querySelectorAll('.card[data-machine="session"] g.node.active')].map((g) => g.getAttribute('data-state') ?? '');
      const leaf = ids.sort((a, b) => a.split('.').length - b.split('.').length).at(-1);
      if (leaf && leaf !== out.at(-1)) out.push(leaf);
    }
    return out;
  }, total);
  t.equal(await page.textContent('#pos'), `${total} / ${total}`);
  const order = ['session.handshaking', 'session.established.ready', 'session.established.working', 'session.closing', 'session.closed'];
  let at = -1;
  for (const state of order) {
    const next = path.indexOf(state, at + 1);
    t.ok(next > at, `stepping forwards shows ${state} after the states before it`);
    if (next > at) at = next;
  }
  // ◀ steps back: from the end, the session goes back from closed to closing.
  t.equal(await leafState(page, 'session'), 'session.closed');
  let back = 0;
  while ((await leafState(page, 'session')) === 'session.closed' && back++ < total) await page.click('#back');
  t.equal(await leafState(page, 'session'), 'session.closing', 'stepping backwards undoes the close');
  // The slider jumps to any point: the first state of the session is the handshake.
  const handshake = live.recorder.events().findIndex((e) => e.kind === 'state' && e.value === 'handshaking');
  await page.$eval('#cursor', (el, v) => {
    const input = el as unknown as PageElement;
    input.value = String(v);
    input.dispatchEvent(new Event('input'));
  }, handshake + 1);
  t.same(await activeStates(page, 'session'), ['session.handshaking'], 'the slider jumps back to the handshake');
  t.match(await page.textContent('#current'), 'handshaking', 'the footer names the step shown');
  await page.click('#tree .actor:has-text("session")');
  await page.screenshot({ path: join(ARTIFACTS, 'inspector-trace.png') });

  // A simulation's trace (same format, written by `talos sim run`): open it, step onto the
  // fault the simulator injected and back off it.
  const simFile = join(ARTIFACTS, 'partition-seed-5.jsonl');
  const simOut: string[] = [];
  const ctx = { stdout: (x: string) => simOut.push(x), stderr: (x: string) => simOut.push(x), env: {}, cwd: ARTIFACTS, json: false, interactive: false };
  t.equal(await runCli(['sim', 'run', 'partition', '--seed', '5', '--out', simFile], ctx), 0, simOut.join(''));
  const sim = decodeTrace(readFileSync(simFile, 'utf8'));
  await page.setInputFiles('#file', simFile);
  await page.waitForFunction(() => document.getElementById('mode')?.textContent === 'trace: sim:partition', undefined, { timeout: WAIT_MS });
  const fault = sim.events.findIndex((e) => e.kind === 'fault');
  t.ok(fault > 0, 'the simulation injected a fault');
  await page.$eval('#cursor', (el, v) => {
    const input = el as unknown as PageElement;
    input.value = String(v);
    input.dispatchEvent(new Event('input'));
  }, fault + 1);
  const faultEvent = sim.events[fault] as { fault: string };
  t.match(await page.textContent('#seq'), `⚡ ${faultEvent.fault}`, 'the fault appears in the sequence view');
  t.match(await page.textContent('#current'), `fault ${faultEvent.fault}`);
  t.same(await activeStates(page, 'tga'), ['tga.running'], "the TGA's machine is drawn with its state");
  await page.click('#back');
  t.notMatch(await page.textContent('#seq'), `⚡ ${faultEvent.fault}`, 'one step back, before the fault');
  t.equal(await page.textContent('#pos'), `${fault} / ${sim.events.length}`);

  // A trace naming machines after Object.prototype's members draws nothing for them, and
  // the page keeps rendering (no error, every actor listed).
  const hostileFile = join(ARTIFACTS, 'hostile.trace.jsonl');
  writeFileSync(hostileFile, encodeTrace({ format: 'talos-trace', v: 1, source: 'hostile' }, [
    { seq: 0, t: 0, kind: 'actor', actor: 'a1', machine: 'constructor' },
    { seq: 1, t: 1, kind: 'actor', actor: 'a2', machine: '__proto__' },
    { seq: 2, t: 2, kind: 'actor', actor: 'a3', machine: 'toString' },
    { seq: 3, t: 3, kind: 'state', actor: 'a1', value: 'x', status: 'active' },
  ]));
  await page.setInputFiles('#file', hostileFile);
  await page.waitForFunction(() => document.getElementById('mode')?.textContent === 'trace: hostile', undefined, { timeout: WAIT_MS });
  await page.evaluate(() => { for (let i = 0; i < 4; i++) document.getElementById('fwd')!.click(); });
  t.equal(await page.textContent('#pos'), '4 / 4');
  t.equal(await page.$$eval('#tree .actor', (n) => n.length), 3, 'every actor of a hostile trace is listed');
  t.equal(await page.$$eval('#cards .card', (n) => n.length), 0, 'and no machine is drawn for them');

  t.same(pageErrors, [], 'no script errors in the page');
  t.same(foreign, [], 'the page loads nothing from elsewhere');
});
