import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '../crypto/index.ts';
import { loadKeyFile, verifyDidDocument } from '../identity/index.ts';
import { TalosClientTransport } from '../mcp/client-transport.ts';
import type { CliContext } from './command.ts';
import { allCommands } from './commands/index.ts';
import { serveGateway } from './commands/tunnel.ts';
import { runCli } from './main.ts';
import { progressBar } from './progress.ts';

function capture(cwd = process.cwd()) {
  const out: string[] = [];
  const err: string[] = [];
  const ctx: CliContext = {
    stdout: (s) => out.push(s),
    stderr: (s) => err.push(s),
    env: {},
    cwd,
    json: false,
    interactive: false,
  };
  return { ctx, out: () => out.join(''), err: () => err.join('') };
}

t.test('every command has a summary, usage, an example and a --help page', async (t) => {
  const commands = allCommands();
  t.ok(commands.length > 0);
  t.equal(new Set(commands.map((c) => c.name)).size, commands.length, 'command names are unique');
  for (const c of commands) {
    t.ok(c.summary && c.usage.startsWith(`talos ${c.name}`), `${c.name}: usage starts with its name`);
    t.ok(c.examples.some((e) => e.includes(`talos ${c.name}`)), `${c.name}: has an example of itself`);
    const io = capture();
    t.equal(await runCli([...c.name.split(' '), '--help'], io.ctx), 0);
    t.match(io.out(), 'examples:');
    t.match(io.out(), c.examples[0]!);
  }
  const io = capture();
  t.equal(await runCli([], io.ctx), 0);
  for (const c of commands) t.match(io.out(), c.name, `overview lists ${c.name}`);
});

t.test('wrong usage exits 2 and says what to do', async (t) => {
  let io = capture();
  t.equal(await runCli(['no-such-command'], io.ctx), 2);
  t.match(io.err(), 'unknown command "no-such-command"');
  io = capture();
  t.equal(await runCli(['identity', 'new', '--bogus'], io.ctx), 2);
  t.match(io.err(), "Unknown option '--bogus'");
  t.match(io.err(), 'talos identity new --help');
  io = capture();
  t.equal(await runCli(['identity', 'show'], io.ctx), 2);
  t.match(io.err(), '--key is required');
});

t.test('refusals say what went wrong and what to do, in text and in --json', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let io = capture(dir);
  t.equal(await runCli(['gateway'], io.ctx), 1);
  t.match(io.err(), 'error [config_unreadable]');
  t.match(io.err(), 'what to do: create a working folder with "talos init DIR"');
  io = capture(dir);
  t.equal(await runCli(['inspect', '--trace', 'nope.jsonl', '--json'], io.ctx), 1);
  t.match(JSON.parse(io.out()), { error: { code: 'trace_unreadable', message: String, hint: /talos sim run/ } });
  writeFileSync(join(dir, 'not-a-trace.jsonl'), '{"hello":1}\n');
  io = capture(dir);
  t.equal(await runCli(['inspect', '--trace', 'not-a-trace.jsonl'], io.ctx), 1);
  t.match(io.err(), 'trace_bad_header');
  t.match(io.err(), 'what to do:');
  io = capture(dir);
  t.equal(await runCli(['connect', '--gateway', 'ws://127.0.0.1:1', '--key', 'missing.key.json', '--token', 't'], io.ctx), 1);
  t.match(io.err(), 'what to do: create a key file with "talos identity new --out FILE"');
});

t.test('bad files and paths are one-line refusals (exit 1), never a stack trace', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'adir'));
  writeFileSync(join(dir, 'afile'), 'x\n');
  writeFileSync(join(dir, 'null.jsonl'), 'null\n');
  writeFileSync(join(dir, 'null-event.jsonl'), '{"format":"talos-trace","v":1,"source":"x"}\nnull\n');
  const cases: [string[], string | RegExp][] = [
    [['inspect', '--trace', 'null.jsonl'], 'error [trace_bad_header]'],
    [['inspect', '--trace', 'null-event.jsonl'], 'error [trace_bad_event]: line 2'],
    [['token', 'inspect', 'adir'], 'error [io]: cannot read: EISDIR'],
    [['init', 'afile/sub'], /^error \[io\]: cannot mkdir \S*afile\/sub\S*: ENOTDIR/],
    [['audit', 'keygen', '--name', 'x', '--out', 'nodir/k.key'], /^error \[io\]: cannot open \S*\/nodir\/k\.key: ENOENT/],
    [['sim', 'run', 'gateway-crash', '--seed', '1', '--out', 'adir'], /^error \[io\]: cannot open \S*\/adir: EISDIR/],
  ];
  for (const [argv, message] of cases) {
    const io = capture(dir);
    t.equal(await runCli(argv, io.ctx), 1, argv.join(' '));
    t.match(io.err(), message, argv.join(' '));
    t.notMatch(io.err(), /\n\s+at |\.tmp-/, 'no stack trace, no temporary file name');
  }
  const io = capture(dir);
  t.equal(await runCli(['token', 'inspect', 'adir', '--json'], io.ctx), 1);
  t.match(JSON.parse(io.out()), { error: { code: 'io', message: /EISDIR/ } }, 'JSON under --json');
});

t.test('identity new writes a key file that identity show reads back; --json is machine-readable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-cli-'));
  let io = capture(dir);
  t.equal(await runCli(['identity', 'new', '--out', 'a.key.json', '--json'], io.ctx), 0);
  const created = JSON.parse(io.out()) as { did: string; document: unknown };
  const verified = verifyDidDocument(createCryptoProvider(), created.document);
  t.equal(verified.did, created.did, 'the printed DID document is signed and matches the DID');
  t.equal(statSync(join(dir, 'a.key.json')).mode & 0o777, 0o600, 'the key file is private');
  const { secrets } = JSON.parse(readFileSync(join(dir, 'a.key.json'), 'utf8')) as { secrets: Record<string, string> };
  for (const secret of Object.values(secrets)) t.notMatch(io.out(), secret, 'no secret is printed');

  io = capture(dir);
  t.equal(await runCli(['identity', 'show', '--key', 'a.key.json', '--json'], io.ctx), 0);
  t.equal((JSON.parse(io.out()) as { did: string }).did, created.did);

  io = capture(dir);
  t.equal(await runCli(['identity', 'new', '--out', 'a.key.json'], io.ctx), 1, 'refuses to overwrite');
  t.match(io.err(), '--force');

  io = capture(dir);
  t.equal(await runCli(['identity', 'show', '--key', 'missing.json', '--json'], io.ctx), 1);
  t.match(JSON.parse(io.out()), { error: { code: String } }, 'errors are JSON too under --json');
});

t.test('talos init makes a folder whose gateway serves the agent its token allows, and nothing more', async (t) => {
  const base = mkdtempSync(join(tmpdir(), 'talos-init-'));
  t.teardown(() => rmSync(base, { recursive: true, force: true }));
  let io = capture(base);
  t.equal(await runCli(['init', 'site', '--port', '0', '--json'], io.ctx), 0, io.err());
  const made = JSON.parse(io.out()) as {
    dir: string;
    gateway: string;
    agent: string;
    files: Record<string, string>;
    next: { gateway: string; connect: string; mcpClient: { mcpServers: Record<string, { command: string; args: string[] }> } };
  };
  t.match(made.next.gateway, 'talos gateway -c site/talos.config.json');
  t.match(made.next.connect, `--gateway-did ${made.gateway}`);
  t.same(made.next.mcpClient.mcpServers['talos-filesystem']!.args.slice(0, 1), ['connect']);
  for (const f of ['gatewayKey', 'issuerKey', 'agentKey', 'agentToken']) {
    t.equal(statSync(made.files[f]!).mode & 0o777, 0o600, `${f} is private`);
  }
  const { secrets } = JSON.parse(readFileSync(made.files.agentKey!, 'utf8')) as { secrets: Record<string, string> };
  for (const secret of Object.values(secrets)) t.notMatch(io.out(), secret, 'no secret is printed');

  const before = readFileSync(made.files.config!, 'utf8');
  io = capture(base);
  t.equal(await runCli(['init', 'site'], io.ctx), 1, 'a second init refuses to overwrite');
  t.match(io.err(), '--force');
  t.equal(readFileSync(made.files.config!, 'utf8'), before, 'nothing changed');
  io = capture(base);
  t.equal(await runCli(['init', 'other', '--days', '0'], io.ctx), 2);
  t.match(io.err(), '--days must be');

  // The gateway exactly as `talos gateway -c site/talos.config.json` starts it.
  let stop!: () => void;
  const gwIo = capture(base);
  const gw = await serveGateway(join(made.dir, 'talos.config.json'), gwIo.ctx, new Promise<void>((r) => (stop = r)));
  let stopped = false;
  const stopGateway = async () => {
    if (stopped) return;
    stopped = true;
    stop();
    await new Promise<void>((done) => gw.actor.subscribe({ complete: done }));
  };
  t.teardown(stopGateway);
  t.equal(gw.did, made.gateway, 'the gateway runs with the key init wrote');

  const crypto = createCryptoProvider();
  const agent = loadKeyFile(crypto, made.files.agentKey!);
  t.equal(agent.did, made.agent);
  writeFileSync(join(made.files.workspace!, 'notes.md'), 'hello through talos\n');
  const client = new Client({ name: 'init-test', version: '1' });
  await client.connect(
    new TalosClientTransport({ gateway: gw.url, identity: agent, crypto, token: readFileSync(made.files.agentToken!, 'utf8').trim(), expectGatewayDid: made.gateway }),
  );
  t.teardown(() => client.close());
  const logVkey = readFileSync(made.files.auditVkey!, 'utf8').trim();
  const read = (await client.callTool({ name: 'read_text_file', arguments: { path: join(made.files.workspace!, 'notes.md') } })) as { content: { text: string }[] };
  t.match(read.content[0]!.text, 'hello through talos', 'the token allows reading the workspace');
  await t.rejects(
    client.callTool({ name: 'read_text_file', arguments: { path: made.files.agentKey! } }),
    McpError,
    'the agent cannot read its own key file next to the workspace',
  );
  await t.rejects(client.callTool({ name: 'write_file', arguments: { path: join(made.files.workspace!, 'x.md'), content: 'x' } }), McpError, 'nor write');
  await client.close();
  await stopGateway();

  // The audit log the gateway kept verifies with the key init wrote, as init's next step says.
  io = capture(base);
  t.equal(await runCli(['audit', 'verify', '--store', `sqlite:${join(made.dir, 'audit.db')}`, '--vkey', logVkey, '--json'], io.ctx), 0, io.err());
  t.match(JSON.parse(io.out()), { ok: true }, 'talos audit verify accepts the log');
});

t.test('progress bars draw on a terminal only, never under --json', async (t) => {
  const drawn: string[] = [];
  const tty: CliContext = { ...capture().ctx, stderr: (s) => drawn.push(s), interactive: true };
  const bar = progressBar(tty, 'verifying', 4);
  bar.update(1);
  bar.finish();
  t.match(drawn.join(''), /verifying \[#+-*\] 1\/4 25%/, 'the first update draws at once');
  t.match(drawn.at(-2), 'verifying [' + '#'.repeat(30) + '] 4/4 100%', 'finish draws the full bar');
  t.equal(drawn.at(-1), '\n');
  for (const ctx of [{ ...tty, json: true }, { ...tty, interactive: false }]) {
    const quiet: string[] = [];
    const b = progressBar({ ...ctx, stderr: (s) => quiet.push(s) }, 'x', 10);
    b.update(5);
    b.finish();
    t.same(quiet, [], 'nothing drawn');
  }
});

t.test('talos demo refuses bad --port and --pause before starting anything', async (t) => {
  let io = capture();
  t.equal(await runCli(['demo', '--inspect', '--port', '70000'], io.ctx), 2);
  t.match(io.err(), '--port must be');
  io = capture();
  t.equal(await runCli(['demo', '--pause', 'soon'], io.ctx), 2);
  t.match(io.err(), '--pause must be');
});
