import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { createNodeProvider } from '../crypto/node.ts';
import { createHasher } from '../audit/merkle.ts';
import { sampleEvent } from '../audit/testing.ts';
import { leafBytes } from '../audit/event.ts';
import { bytesEqual } from '../encoding/bytes.ts';
import { SqliteAuditStore } from './audit-sqlite.ts';
import { PostgresAuditStore } from './audit-postgres.ts';
import { verifyStoredLog } from '../audit/verify.ts';
import type { AuditStore } from './audit-store.ts';

/** kill -9 during heavy appends: no acknowledged event may be lost (real SQLite, real PostgreSQL). */
const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, 'audit-crash.child.ts');
const crypto = createNodeProvider();
const hasher = createHasher((d) => crypto.sha256(d));
const BATCH = 250;
/** Acknowledged batches to wait for before the kill. */
const ACKS_BEFORE_KILL = 12;

interface Ack {
  tag: number;
  first: number;
  size: number;
}

function runAndKill(args: string[]): Promise<Ack[]> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const acks: Ack[] = [];
    let stderr = '';
    p.stderr.on('data', (d) => (stderr += d));
    createInterface({ input: p.stdout }).on('line', (line) => {
      const m = /^ack (\d+) (\d+) (\d+)$/.exec(line);
      if (!m) return;
      acks.push({ tag: Number(m[1]), first: Number(m[2]), size: Number(m[3]) });
      if (acks.length === ACKS_BEFORE_KILL) p.kill('SIGKILL');
    });
    p.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acks);
      else reject(new Error(`child exited early (${code}): ${stderr.slice(0, 2000)}`));
    });
  });
}

async function checkSurvivors(t: Test, store: AuditStore, acks: Ack[]): Promise<void> {
  const head = await store.head();
  const maxAck = Math.max(...acks.map((a) => a.size));
  t.ok(head.size >= maxAck, `head ${head.size} >= last acknowledged size ${maxAck}`);
  for (const a of acks) {
    for (const i of [0, 1, BATCH - 1]) {
      const leaf = await store.readLeaf(a.first + i);
      t.ok(leaf && bytesEqual(leaf, leafBytes(sampleEvent(a.tag * BATCH + i, 'crash'))), `acknowledged event ${a.first + i} survived intact`);
    }
  }
  const report = await verifyStoredLog(store, { crypto, hasher, origin: 'unused.test/log', publicKey: crypto.ed25519PublicKey(new Uint8Array(32)) });
  t.ok(report.ok, `the log recomputes cleanly after the crash: ${JSON.stringify(report.problems.slice(0, 2))}`);
}


t.test('sqlite: kill -9 loses nothing acknowledged', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'talos-audit-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'log.db');
  const acks = await runAndKill(['sqlite', path]);
  t.equal(acks.length >= ACKS_BEFORE_KILL, true);
  const store = new SqliteAuditStore({ path, hasher });
  try {
    await checkSurvivors(t, store, acks);
  } finally {
    await store.close();
  }
});

t.test('postgres: kill -9 loses nothing acknowledged', async (t) => {
  const url = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
  const schema = `audit_crash_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Pool({ connectionString: url, max: 1 });
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await admin.end();
  });
  const acks = await runAndKill(['postgres', url, schema]);
  const store = await PostgresAuditStore.open({ connectionString: url, schema, hasher });
  try {
    await checkSurvivors(t, store, acks);
  } finally {
    await store.close();
  }
});
