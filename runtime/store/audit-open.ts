import { AuditError } from '../audit/errors.ts';
import type { Hasher } from '../audit/merkle.ts';
import type { AuditStore } from './audit-store.ts';
import { SqliteAuditStore } from './audit-sqlite.ts';
import { PostgresAuditStore } from './audit-postgres.ts';

export interface OpenAuditStoreOptions {
  /**
   * Open without creating or changing anything (verify, prove): a store without the audit
   * tables is refused as not_found instead of being initialized.
   */
  readonly?: boolean;
}

/** How long the CLI waits for a PostgreSQL connection before refusing (an unreachable host). */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * Opens an audit store from a spec string: `memory` (SQLite in memory, not durable),
 * `sqlite:<path>`, or a `postgres://` URL whose optional `schema` query parameter names the
 * schema (default public). Open failures are AuditErrors whose messages never carry the URL's
 * credentials.
 */
export async function openAuditStoreSpec(spec: string, hasher: Hasher, options: OpenAuditStoreOptions = {}): Promise<AuditStore> {
  const readonly = options.readonly ?? false;
  if (spec === 'memory') {
    if (readonly) throw new AuditError('not_found', 'an in-memory audit store is always empty');
    return new SqliteAuditStore({ path: ':memory:', hasher });
  }
  if (spec.startsWith('sqlite:')) return new SqliteAuditStore({ path: spec.slice('sqlite:'.length), hasher, readonly });
  if (/^postgres(ql)?:\/\//.test(spec)) {
    let url: URL;
    try {
      url = new URL(spec);
    } catch {
      // The spec itself is not echoed: it may hold a password.
      throw new AuditError('bad_config', 'the audit store postgres:// URL is not a valid URL');
    }
    const schema = url.searchParams.get('schema') ?? undefined;
    url.searchParams.delete('schema');
    const where = `${url.protocol}//${url.host}${url.pathname}`;
    try {
      return await PostgresAuditStore.open({ hasher, connectionString: url.href, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, readonly, ...(schema ? { schema } : {}) });
    } catch (e) {
      if (e instanceof AuditError) throw e;
      const err = e as { code?: string; message?: string };
      let reason = err.code ?? '';
      // A system error code (ECONNREFUSED, ENOTFOUND, ...): the server did not answer.
      const systemError = /^E[A-Z]+$/.test(reason);
      // Server refusals (SQLSTATE codes: bad password, no such database) explain themselves;
      // the password is cut out should a message ever quote it.
      if (err.message && !systemError) reason = `${reason ? `${reason} ` : ''}${err.message}`;
      for (const secret of passwordForms(url.password)) reason = reason.split(secret).join('***');
      // No answer (refused, unresolvable, timed out) is the server being away, not the URL being
      // wrong: store_unreachable; a server that answered and refused (SQLSTATE) is bad_config.
      const unreachable = systemError || /timeout/i.test(err.message ?? '');
      throw new AuditError(unreachable ? 'store_unreachable' : 'bad_config', `cannot open the audit store at ${where}: ${reason || 'connection failed'}`, { cause: e });
    }
  }
  throw new AuditError('bad_config', 'the audit store is memory, sqlite:<path> or a postgres:// URL');
}

/** The password as written in the URL and, when it decodes, as the driver sees it. */
function passwordForms(password: string): string[] {
  if (!password) return [];
  try {
    return [decodeURIComponent(password), password];
  } catch {
    return [password]; // a stray '%' is taken literally
  }
}
