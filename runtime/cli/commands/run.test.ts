import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '../../crypto/index.ts';
import { generateIdentity, saveKeyFile } from '../../identity/index.ts';
import { connectAgent, everythingUpstream, getJson, text } from '../../system-test-kit.ts';
import type { CliContext } from '../command.ts';
import { runCli } from '../main.ts';
import { serveRuntime } from './run.ts';

// `talos run`: a talos.config.json served by the whole runtime under the TGA, with probes.
const dir = mkdtempSync(join(tmpdir(), 'talos-cli-run-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const crypto = createCryptoProvider();
const issuer = generateIdentity(crypto);
const gateway = generateIdentity(crypto);
saveKeyFile(join(dir, 'gateway.key.json'), gateway, { created: Date.now() });
const configPath = join(dir, 'talos.config.json');
writeFileSync(
  configPath,
  JSON.stringify({ v: 1, gateway: { listen: { port: 0 }, keyFile: 'gateway.key.json' }, trustedIssuers: [issuer.did], upstreams: [everythingUpstream()] }),
);

function capture(): { ctx: CliContext; out: () => string; err: () => string } {
  let out = '';
  let err = '';
  return {
    ctx: { stdout: (s) => void (out += s), stderr: (s) => void (err += s), env: {}, cwd: dir, json: true, interactive: false },
    out: () => out,
    err: () => err,
  };
}

t.test('talos run serves the config under the TGA, with probes, until stopped', async (t) => {
  const io = capture();
  let stop!: () => void;
  const until = new Promise<void>((r) => (stop = r));
  const runtime = await serveRuntime(configPath, io.ctx, { healthPort: 0 }, until);
  const shown = JSON.parse(io.out()) as { did: string; url: string; health: string; children: string[] };
  t.equal(shown.did, gateway.did, 'the configured key file');
  t.same(shown.children.sort(), ['auditor', 'gateway', 'jobs', 'upstream:everything']);
  t.equal((await getJson(`${shown.health}/readyz`)).status, 200);
  const { client } = await connectAgent(runtime, crypto, issuer, [{ method: 'tools/call', tool: 'echo' }]);
  t.equal(text(await client.callTool({ name: 'echo', arguments: { message: 'run' } })), 'Echo: run');
  await client.close();
  t.match(io.err(), /upstream everything: \d+ tools pinned/);
  stop();
  await new Promise<void>((r) => runtime.tga.subscribe({ complete: r }));
  await runtime.stop();
  t.equal(runtime.tga.getSnapshot().status, 'done');
});

t.test('talos run refuses bad options with a usage error', async (t) => {
  const io = capture();
  t.equal(await runCli(['run', '--config', configPath, '--drift', 'sometimes'], io.ctx), 2);
  t.equal(await runCli(['run', '--config', configPath, '--health-port', '99999'], io.ctx), 2);
});
