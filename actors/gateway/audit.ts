import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { AuditLog } from '../../runtime/audit/log.ts';
import { createHasher } from '../../runtime/audit/merkle.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';
import type { LogKey } from '../../runtime/audit/checkpoint.ts';
import { startAuditor, type Auditor, type AuditorOptions } from '../auditor/index.ts';
import type { AuditStore } from '../../runtime/store/audit-store.ts';
import { openAuditStoreSpec } from '../../runtime/store/audit-open.ts';
import { AuditError } from '../../runtime/audit/errors.ts';
import { TunnelError } from '../../runtime/mcp/errors.ts';
import type { AuditSink } from '../../runtime/mcp/pipeline.ts';

/**
 * The gateway's audit: the auditor actor (actors/auditor: group commit, checkpoints every
 * second, durable once `append` resolves) on an AuditLog over the configured store, signing
 * checkpoints with the gateway's identity key under the gateway's name as the log origin.
 */
export interface GatewayAudit extends AuditSink {
  log: AuditLog;
  store: AuditStore;
  auditor: Auditor;
  key: LogKey;
  append(event: AuditEvent): Promise<{ index: number }>;
  close(): Promise<void>;
}

export async function openAuditStore(spec: string, crypto: CryptoProvider): Promise<AuditStore> {
  try {
    return await openAuditStoreSpec(spec, createHasher((d) => crypto.sha256(d)));
  } catch (err) {
    // A store spec the gateway cannot open is a configuration error (audit.store).
    if (err instanceof AuditError && err.code === 'bad_config') throw new TunnelError('config_invalid', `audit.store: ${err.message}`);
    throw err;
  }
}

export function startGatewayAudit(
  store: AuditStore,
  crypto: CryptoProvider,
  key: LogKey,
  options: Pick<AuditorOptions, 'onError' | 'inspect' | 'hashLeaves'> = {},
): GatewayAudit {
  const log = new AuditLog(store, createHasher((d) => crypto.sha256(d)));
  const auditor = startAuditor({ log, crypto, key, ...options });
  return {
    log,
    store,
    auditor,
    key,
    append: (event) => auditor.append(event),
    async close() {
      await auditor.close();
      await store.close();
    },
  };
}
