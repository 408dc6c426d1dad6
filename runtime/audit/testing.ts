import { createHash } from 'node:crypto';
import { toB64u } from '../encoding/base64url.ts';
import type { AuditEvent } from './event.ts';

/** Deterministic valid audit events for tests and benchmarks (no crypto provider needed). */
export function sampleEvent(i: number, salt = ''): AuditEvent {
  const msg = createHash('sha256').update(`${salt}msg ${i}`).digest();
  const ev: AuditEvent = {
    ts: 1_760_000_000_000 + i,
    kind: i % 3 === 0 ? 'response' : 'request',
    from: 'did:talos:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK',
    to: 'mcp:filesystem',
    msg_hash: toB64u(new Uint8Array(msg)),
  };
  if (ev.kind === 'request') {
    ev.method = 'tools/call';
    ev.tool = 'read_file';
    ev.decision = i % 7 === 0 ? 'deny' : 'allow';
    ev.reason = i % 7 === 0 ? 'capability_expired' : 'granted';
    ev.token_id = `tok${i % 100}`;
  }
  return ev;
}
