import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createNodeProvider } from '../../runtime/crypto/node.ts';
import { createHasher, verifyInclusion } from '../../runtime/audit/merkle.ts';
import { AuditLog } from '../../runtime/audit/log.ts';
import { openCheckpoint } from '../../runtime/audit/checkpoint.ts';
import { leafBytes } from '../../runtime/audit/event.ts';
import { sampleEvent } from '../../runtime/audit/testing.ts';
import { verifyStoredLog } from '../../runtime/audit/verify.ts';
import { bytesEqual } from '../../runtime/encoding/bytes.ts';
import { SqliteAuditStore } from '../../runtime/store/audit-sqlite.ts';
import { startAuditor } from './index.ts';

const crypto = createNodeProvider();
const hasher = createHasher((d) => crypto.sha256(d));
const key = { origin: 'talos.test/auditor', seed: new Uint8Array(32).fill(5) };
const pub = crypto.ed25519PublicKey(key.seed);
const dir = mkdtempSync(join(tmpdir(), 'talos-auditor-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('appends resolve once durable, in order, with checkpoints on a real SQLite store', async (t) => {
  const store = new SqliteAuditStore({ path: join(dir, 'a.db'), hasher });
  const log = new AuditLog(store, hasher);
  const cps: number[] = [];
  const auditor = startAuditor({ log, crypto, key, config: { maxBatch: 64, checkpointEveryEvents: 100, checkpointEveryMs: 60_000 }, onCheckpoint: (cp) => cps.push(cp.size) });
  const results = await Promise.all(Array.from({ length: 250 }, (_, i) => auditor.append(sampleEvent(i))));
  t.same(results.map((r) => r.index), Array.from({ length: 250 }, (_, i) => i), 'indexes follow the order of append calls');
  t.ok(results.every((r, i) => bytesEqual(r.leafHash, hasher.hashLeaf(leafBytes(sampleEvent(i))))));
  // Acknowledged means stored: read back through a second handle.
  const reader = new SqliteAuditStore({ path: join(dir, 'a.db'), hasher });
  t.same(await reader.readLeaf(249), leafBytes(sampleEvent(249)));
  await reader.close();
  await t.rejects(auditor.append({ ...sampleEvent(1), plaintext: 'x' } as never), { code: 'bad_event' });
  await auditor.close();
  await t.rejects(auditor.append(sampleEvent(300)), { code: 'audit_closed' });
  t.ok(cps.length >= 2, 'checkpoints were signed every 100 events and at close');
  t.equal(cps[cps.length - 1], 250, 'final checkpoint covers everything');
  const cp = openCheckpoint(crypto, (await store.latestCheckpoint())!.note, key.origin, pub);
  const proof = await log.inclusionProof(123, cp.size);
  t.ok(verifyInclusion(hasher, 123, cp.size, results[123]!.leafHash, proof, cp.root));
  t.ok((await verifyStoredLog(store, { crypto, hasher, origin: key.origin, publicKey: pub })).ok);
  await store.close();
});

t.test('backpressure is reported to the caller', async (t) => {
  const store = new SqliteAuditStore({ path: join(dir, 'b.db'), hasher });
  const auditor = startAuditor({ log: new AuditLog(store, hasher), crypto, key, config: { maxBatch: 10, maxQueue: 20, checkpointEveryMs: 60_000 } });
  const outcomes = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => auditor.append(sampleEvent(i))));
  const refused = outcomes.filter((o) => o.status === 'rejected');
  const accepted = outcomes.filter((o) => o.status === 'fulfilled');
  t.ok(refused.length > 0, 'some were refused');
  t.ok(refused.every((o) => (o as PromiseRejectedResult).reason.code === 'audit_backpressure'));
  t.equal((await store.head()).size, accepted.length, 'exactly the acknowledged ones are stored');
  await auditor.close();
  await store.close();
});

t.test('a batch whose leaf hashes were computed elsewhere is stored with them', async (t) => {
  const store = new SqliteAuditStore({ path: join(dir, 'c.db'), hasher });
  const given: number[] = [];
  const auditor = startAuditor({
    log: new AuditLog(store, hasher),
    crypto,
    key,
    config: { checkpointEveryMs: 60_000 },
    hashLeaves: async (leaves) => {
      given.push(leaves.length);
      return leaves.map((l) => hasher.hashLeaf(l));
    },
  });
  const results = await Promise.all(Array.from({ length: 20 }, (_, i) => auditor.append(sampleEvent(i))));
  t.same(given, [20], 'the batch went through hashLeaves');
  t.ok(results.every((r, i) => bytesEqual(r.leafHash, hasher.hashLeaf(leafBytes(sampleEvent(i))))));
  await auditor.close();
  t.ok((await verifyStoredLog(store, { crypto, hasher, origin: key.origin, publicKey: pub })).ok, 'the stored log verifies');
  await store.close();
});
