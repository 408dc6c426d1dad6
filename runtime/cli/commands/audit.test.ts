import t from 'tap';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeProvider } from '../../crypto/node.ts';
import { fromB64, fromB64u } from '../../encoding/base64url.ts';
import { createHasher, verifyInclusion, verifyConsistency } from '../../audit/merkle.ts';
import { AuditLog } from '../../audit/log.ts';
import { openCheckpoint } from '../../audit/checkpoint.ts';
import { verifyCosignature } from '../../audit/cosignature.ts';
import { parseVerifierKey, verifierKeyString } from '../../audit/note.ts';
import { sampleEvent } from '../../audit/testing.ts';
import { SqliteAuditStore } from '../../store/audit-sqlite.ts';
import type { CliContext } from '../command.ts';
import { auditCommands } from './audit.ts';
import { runCli } from '../main.ts';

const crypto = createNodeProvider();
const hasher = createHasher((d) => crypto.sha256(d));
const dir = mkdtempSync(join(tmpdir(), 'talos-audit-cli-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

async function run(name: string, options: Record<string, string | boolean>, positionals: string[] = [], json = true, interactive = false) {
  let stdout = '';
  let stderr = '';
  const ctx: CliContext = { stdout: (x) => (stdout += x), stderr: (x) => (stderr += x), env: {}, cwd: dir, json, interactive };
  const code = await auditCommands.find((c) => c.name === `audit ${name}`)!.run({ options, positionals }, ctx);
  return { code, stdout, stderr, json: json ? JSON.parse(stdout) : undefined };
}

t.test('keygen, checkpoint, prove, witness, verify on a real SQLite log', async (t) => {
  const logKey = await run('keygen', { name: 'audit.test/log', out: 'log.key' });
  t.equal(logKey.code, 0);
  t.equal(statSync(join(dir, 'log.key')).mode & 0o777, 0o600, 'signer key written 0600');
  const vkey = logKey.json.vkey as string;
  const { publicKey } = parseVerifierKey(crypto, vkey);
  await t.rejects(run('keygen', { name: 'audit.test/log', out: 'log.key' }), { code: 'file_exists' });
  const wKey = await run('keygen', { name: 'witness.test/w', out: 'w.key', witness: true });
  t.match(wKey.json.vkey, /^witness\.test\/w\+[0-9a-f]{8}\+B/, 'type 0x04 verifier key');

  const path = join(dir, 'log.db');
  const store = new SqliteAuditStore({ path, hasher });
  const log = new AuditLog(store, hasher);
  await log.appendEvents(Array.from({ length: 300 }, (_, i) => sampleEvent(i)));
  const spec = `sqlite:${path}`;

  const early = await run('prove', { store: spec }, ['5']);
  t.equal(early.json.proof.size, 300, 'no checkpoint yet: proves against the head');
  t.notOk('checkpoint' in early.json);
  await t.rejects(run('prove', { store: spec, vkey }, ['5']), { code: 'no_checkpoint' }, 'nothing signed to check against');
  const cp1 = await run('checkpoint', { store: spec, 'signer-key': 'log.key' });
  t.equal(cp1.json.size, 300);
  t.equal(openCheckpoint(crypto, cp1.json.note, 'audit.test/log', publicKey).size, 300);
  const latest = await run('checkpoint', { store: spec });
  t.equal(latest.json.note, cp1.json.note, 'without a key: the latest stored checkpoint');

  const prove = await run('prove', { store: spec, vkey, 'consistency-from': '100' }, ['123']);
  t.equal(prove.code, 0);
  t.equal(prove.json.verified, true);
  const cp = openCheckpoint(crypto, prove.json.checkpoint, 'audit.test/log', publicKey);
  t.ok(verifyInclusion(hasher, 123, 300, fromB64u(prove.json.proof.leaf_hash), prove.json.proof.hashes.map((h: string) => fromB64u(h)), cp.root));
  t.ok(verifyConsistency(hasher, 100, 300, await log.rootAt(100), cp.root, prove.json.consistency.hashes.map((h: string) => fromB64u(h))));
  t.same(prove.json.event, sampleEvent(123));
  await t.rejects(run('prove', { store: spec }, ['300']), { code: 'bad_index' });
  await t.rejects(run('prove', { store: spec }, ['-1']), { code: 'usage' });

  const w1 = await run('witness', { store: spec, vkey, 'witness-key': 'w.key', state: 'w.json' });
  t.equal(w1.json.size, 300);
  const witnessPub = fromB64((wKey.json.vkey as string).split('+').slice(2).join('+')).slice(1);
  t.same(verifyCosignature(crypto, w1.json.note, 'witness.test/w', witnessPub)?.name, 'witness.test/w', 'the cosignature verifies');
  await log.appendEvents(Array.from({ length: 50 }, (_, i) => sampleEvent(300 + i)));
  await run('checkpoint', { store: spec, 'signer-key': 'log.key' });
  const w2 = await run('witness', { store: spec, vkey, 'witness-key': 'w.key', state: 'w.json' });
  t.equal(w2.json.size, 350, 'second cosignature after a consistency check from 300');
  t.match(JSON.parse(readFileSync(join(dir, 'w.json'), 'utf8')), { 'audit.test/log': { size: 350 } }, 'state saved');
  await t.rejects(run('witness', { store: spec, vkey, 'witness-key': 'log.key', state: 'w.json' }), { code: 'bad_key' }, 'a log key is not a witness key');

  const ok = await run('verify', { store: spec, vkey }, [], false);
  t.equal(ok.code, 0);
  t.match(ok.stdout, /^ok: 350 events and 4 signed checkpoints verified/);
  // Progress bar on an interactive terminal (stderr), nothing on stdout changes.
  const withBar = await run('verify', { store: spec, vkey }, [], false, true);
  t.match(withBar.stderr, /verifying \[#+\] 350\/350 100%/);

  store.db.prepare('UPDATE audit_events SET leaf = ? WHERE idx = 200').run(Buffer.from(JSON.stringify(sampleEvent(201))));
  const bad = await run('verify', { store: spec, vkey }, [], false);
  t.equal(bad.code, 1);
  t.match(bad.stdout, /FAILED: first bad index 200/);
  await store.close();
  await t.rejects(run('verify', { store: `sqlite:${join(dir, 'missing.db')}`, vkey }), { code: 'not_found' });
  await t.rejects(run('verify', { vkey }), { code: 'usage' });
});

// verify/prove open the store read-only and turn open failures into typed refusals (exit 1,
// a message without the URL's password), leaving the file byte for byte as it was.
t.test('verify and prove refuse bad stores without changing them', async (t) => {
  const vkey = verifierKeyString(crypto, 'audit.test/log', crypto.ed25519PublicKey(new Uint8Array(32).fill(1)));
  writeFileSync(join(dir, 'notes.txt'), 'just some text, not a database\n');
  writeFileSync(join(dir, 'zero.db'), '');
  mkdirSync(join(dir, 'adir.db'));
  const cli = async (argv: string[]) => {
    let out = '';
    const code = await runCli(argv, { stdout: (x) => (out += x), stderr: (x) => (out += x), env: {}, cwd: dir, json: false, interactive: false });
    return { code, out };
  };
  const cases: [string, string, RegExp][] = [
    ['sqlite:notes.txt', 'bad_config', /notes\.txt is not an SQLite database/],
    ['sqlite:zero.db', 'not_found', /no audit log in .*zero\.db/],
    ['sqlite:adir.db', 'not_found', /no audit log at .*adir\.db \(it is a directory\)/],
    ['postgres://[::1', 'bad_config', /not a valid URL/],
    ['postgres://talos:s3cret-pw@127.0.0.1:1/x', 'store_unreachable', /cannot open the audit store at postgres:\/\/127\.0\.0\.1:1\/x: ECONNREFUSED/],
    ['postgres://talos:s3cret%zz@127.0.0.1:1/x', 'store_unreachable', /cannot open the audit store at postgres:\/\/127\.0\.0\.1:1\/x/], // a '%' that does not decode
    [noSuchDatabase(), 'bad_config', /3D000/], // the server answers: no such database
  ];
  const snapshot = () => ['notes.txt', 'zero.db'].map((f) => readFileSync(join(dir, f)).toString('hex')).join('/') + readdirSync(dir).sort().join(',');
  for (const [store, code, message] of cases) {
    for (const argv of [
      ['audit', 'verify', '--store', store, '--vkey', vkey],
      ['audit', 'prove', '0', '--store', store],
    ]) {
      const before = snapshot();
      const r = await cli(argv);
      t.equal(r.code, 1, `${argv[1]} ${store}: exit 1`);
      t.match(r.out, new RegExp(`error \\[${code}\\]: .*${message.source}`), `${argv[1]} ${store}: message`);
      t.notMatch(r.out, /s3cret/, 'no password in the message');
      t.equal(snapshot(), before, `${argv[1]} ${store}: files unchanged`);
    }
  }
  t.equal(statSync(join(dir, 'zero.db')).size, 0, 'the empty file stays empty');
});

// A state file of the wrong shape must not be read as "no state" (cosigning with no
// consistency check) nor crash: refused, with the state file and the store unchanged.
t.test('witness refuses a malformed state file', async (t) => {
  const logKey = await run('keygen', { name: 'audit.test/ws', out: 'ws-log.key' });
  await run('keygen', { name: 'witness.test/ws', out: 'ws-w.key', witness: true });
  const vkey = logKey.json.vkey as string;
  const path = join(dir, 'ws.db');
  const store = new SqliteAuditStore({ path, hasher });
  t.teardown(() => store.close());
  await new AuditLog(store, hasher).appendEvents([sampleEvent(0), sampleEvent(1)]);
  const spec = `sqlite:${path}`;
  await run('checkpoint', { store: spec, 'signer-key': 'ws-log.key' });
  const rows = () => store.db.prepare('SELECT count(*) FROM audit_checkpoints').pluck().get();
  for (const text of ['null', '[1]', '"x"', '{"audit.test/ws": null}', '{"audit.test/ws": [1]}', '{"audit.test/ws": {"note": 5}}', '{"other.test/log": {"size": -1, "root": "", "note": ""}}']) {
    writeFileSync(join(dir, 'ws.state'), text);
    const before = rows();
    await t.rejects(run('witness', { store: spec, vkey, 'witness-key': 'ws-w.key', state: 'ws.state' }), { name: 'AuditError', code: 'bad_config', message: /^witness state / }, text);
    t.equal(readFileSync(join(dir, 'ws.state'), 'utf8'), text, `${text}: state file unchanged`);
    t.equal(rows(), before, `${text}: no cosigned checkpoint stored`);
  }
});

/** The test PostgreSQL (DATABASE_URL, else 127.0.0.1:5432) with a database that does not exist. */
function noSuchDatabase(): string {
  const url = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  url.pathname = '/talos_no_such_database';
  return url.href;
}
