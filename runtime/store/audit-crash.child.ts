/**
 * Child process for audit-crash.test.ts: appends batches as fast as it can and prints
 * "ack <first> <size>" only after each append resolved (acknowledged = durable). The parent
 * kills it with SIGKILL mid-stream and checks that every acknowledged event survived.
 */
import { createNodeProvider } from '../crypto/node.ts';
import { createHasher } from '../audit/merkle.ts';
import { AuditLog } from '../audit/log.ts';
import { sampleEvent } from '../audit/testing.ts';
import { SqliteAuditStore } from './audit-sqlite.ts';
import { PostgresAuditStore } from './audit-postgres.ts';

const [kind, target, schema] = process.argv.slice(2);
const crypto = createNodeProvider();
const hasher = createHasher((d) => crypto.sha256(d));
const store = kind === 'sqlite' ? new SqliteAuditStore({ path: target!, hasher }) : await PostgresAuditStore.open({ connectionString: target!, schema: schema!, hasher });
const log = new AuditLog(store, hasher);
const BATCH = 250;
const IN_FLIGHT = kind === 'sqlite' ? 1 : 3;
let next = 0;

async function worker(): Promise<void> {
  for (;;) {
    // Event content is a function of the index it will get only when one writer runs; with
    // several in flight we tag events by a per-batch counter and the parent checks by content.
    const tag = next++;
    const events = Array.from({ length: BATCH }, (_, i) => sampleEvent(tag * BATCH + i, 'crash'));
    const r = await log.appendEvents(events);
    process.stdout.write(`ack ${tag} ${r.first} ${r.size}\n`);
  }
}
await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
