import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { AuditLog } from '../../runtime/audit/log.ts';
import { createHasher } from '../../runtime/audit/merkle.ts';
import { checkEvent, type AuditEvent } from '../../runtime/audit/event.ts';
import type { AuditStore } from '../../runtime/store/audit-store.ts';
import { SqliteAuditStore } from '../../runtime/store/audit-sqlite.ts';
import { PostgresAuditStore } from '../../runtime/store/audit-postgres.ts';
import { TunnelError } from '../../runtime/mcp/errors.ts';
import type { AuditSink } from '../../runtime/mcp/pipeline.ts';

/**
 * The gateway's audit sink on runtime/audit's AuditLog: each append is durable when its
 * promise resolves. Appends that arrive while a write is in flight are committed together in
 * the next single store transaction (group commit), so a busy gateway pays one fsync per batch
 * instead of one per event, and the order of events is the order of append calls.
 */

/** Events committed in one store transaction at most. */
export const MAX_AUDIT_BATCH = 512;

export interface GatewayAudit extends AuditSink {
  log: AuditLog;
  store: AuditStore;
  append(event: AuditEvent): Promise<{ index: number }>;
  close(): Promise<void>;
}

export async function openAuditStore(spec: string, crypto: CryptoProvider): Promise<AuditStore> {
  const hasher = createHasher((d) => crypto.sha256(d));
  if (spec === 'memory') return new SqliteAuditStore({ path: ':memory:', hasher });
  if (spec.startsWith('sqlite:')) return new SqliteAuditStore({ path: spec.slice('sqlite:'.length), hasher });
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const url = new URL(spec);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return PostgresAuditStore.open({ hasher, connectionString: url.href, ...(schema ? { schema } : {}) });
  }
  throw new TunnelError('config_invalid', 'audit.store must be memory, sqlite:<path> or a postgres:// URL');
}

export function groupCommitAudit(store: AuditStore, crypto: CryptoProvider): GatewayAudit {
  const log = new AuditLog(store, createHasher((d) => crypto.sha256(d)));
  let queue: { event: AuditEvent; resolve: (v: { index: number }) => void; reject: (e: unknown) => void }[] = [];
  let writing = false;

  const flush = async () => {
    writing = true;
    while (queue.length > 0) {
      const batch = queue.slice(0, MAX_AUDIT_BATCH);
      queue = queue.slice(batch.length);
      try {
        const r = await log.appendEvents(batch.map((b) => b.event));
        batch.forEach((b, i) => b.resolve({ index: r.first + i }));
      } catch (err) {
        for (const b of batch) b.reject(err);
      }
    }
    writing = false;
  };

  return {
    log,
    store,
    append(event: AuditEvent) {
      return new Promise((resolve, reject) => {
        // Checked alone first: one bad event must not fail the batch it would have joined.
        checkEvent(event);
        queue.push({ event, resolve, reject });
        if (!writing) void flush();
      });
    },
    close: () => store.close(),
  };
}
