import t from 'tap';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '../crypto/index.ts';
import { verifyDidDocument } from '../identity/index.ts';
import type { CliContext } from './command.ts';
import { allCommands } from './commands/index.ts';
import { runCli } from './main.ts';

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
