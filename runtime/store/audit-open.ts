import { AuditError } from '../audit/errors.ts';
import type { Hasher } from '../audit/merkle.ts';
import type { AuditStore } from './audit-store.ts';
import { SqliteAuditStore } from './audit-sqlite.ts';
import { PostgresAuditStore } from './audit-postgres.ts';

/**
 * Opens an audit store from a spec string: `memory` (SQLite in memory, not durable),
 * `sqlite:<path>`, or a `postgres://` URL whose optional `schema` query parameter names the
 * schema (default public).
 */
export async function openAuditStoreSpec(spec: string, hasher: Hasher): Promise<AuditStore> {
  if (spec === 'memory') return new SqliteAuditStore({ path: ':memory:', hasher });
  if (spec.startsWith('sqlite:')) return new SqliteAuditStore({ path: spec.slice('sqlite:'.length), hasher });
  if (/^postgres(ql)?:\/\//.test(spec)) {
    const url = new URL(spec);
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    return PostgresAuditStore.open({ hasher, connectionString: url.href, ...(schema ? { schema } : {}) });
  }
  throw new AuditError('bad_config', 'the audit store is memory, sqlite:<path> or a postgres:// URL');
}
