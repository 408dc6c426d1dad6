import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import { encodeToken, mintToken, type Grant } from './capability/index.ts';
import { resolveConfig, type TalosConfig } from './config/config.ts';
import type { CryptoProvider } from './crypto/provider.ts';
import { fromUtf8 } from './encoding/bytes.ts';
import { generateIdentity, type Identity } from './identity/index.ts';
import type { AuditEvent } from './audit/event.ts';
import { TalosClientTransport } from './mcp/client-transport.ts';
import { referenceServerScript } from './mcp/servers.ts';
import type { Runtime } from './system.ts';

/**
 * Shared set-up for the whole-system tests of issue 7: a TalosConfig around real reference MCP
 * servers (started as `process.execPath <script>`), agents on the SDK's own Client through the
 * tunnel, refusals read from JSON-RPC errors, and the health server read over HTTP.
 */
export const everythingUpstream = () => ({
  name: 'everything',
  transport: 'stdio',
  command: process.execPath,
  args: [referenceServerScript('server-everything'), 'stdio'],
});

export const memoryUpstream = (file: string) => ({
  name: 'memory',
  transport: 'stdio',
  command: process.execPath,
  args: [referenceServerScript('server-memory')],
  env: { MEMORY_FILE_PATH: file },
});

export function tunnelConfig(issuer: Identity, extra: Record<string, unknown>): TalosConfig {
  return resolveConfig(
    { v: 1, gateway: { listen: { port: 0 }, name: 'talos.test/runtime' }, trustedIssuers: [issuer.did], upstreams: [everythingUpstream()], ...extra },
    { baseDir: process.cwd() },
  );
}

export async function connectAgent(
  runtime: Runtime,
  crypto: CryptoProvider,
  issuer: Identity,
  grants: Grant[],
): Promise<{ client: Client; identity: Identity; token: string }> {
  const identity = generateIdentity(crypto);
  const nowS = Math.floor(Date.now() / 1000);
  const token = encodeToken(mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: identity.did, aud: runtime.did!, grants, nbf: nowS - 60, exp: nowS + 3600 }));
  const client = new Client({ name: 'runtime-test-agent', version: '1.0.0' });
  await client.connect(new TalosClientTransport({ gateway: runtime.gatewayUrl!, identity, crypto, token, expectGatewayDid: runtime.did! }));
  return { client, identity, token };
}

export const text = (r: unknown) => (r as { content: { text: string }[] }).content[0]!.text;

export interface Refusal {
  code: number;
  reason: string;
  message: string;
  data: Record<string, unknown>;
}

/** The JSON-RPC refusal a call ended with (throws if it succeeded). */
export async function refusal(p: Promise<unknown>): Promise<Refusal> {
  try {
    await p;
  } catch (err) {
    if (err instanceof McpError) {
      const d = (err.data as { talos?: Record<string, unknown> })?.talos ?? {};
      return { code: err.code, reason: String(d.reason), message: err.message, data: d };
    }
    throw err;
  }
  throw new Error('expected a refusal');
}

export async function getJson(url: string): Promise<{ status: number; body: { status: string; checks: Record<string, { ok: boolean; detail?: string }> } }> {
  const res = await fetch(url);
  return { status: res.status, body: (await res.json()) as never };
}

/** The value of one sample of the Prometheus text (undefined when absent). */
export async function metric(healthUrl: string, name: string, labels: string): Promise<number | undefined> {
  const body = await (await fetch(`${healthUrl}/metrics`)).text();
  const line = body.split('\n').find((l) => l.startsWith(`${name}{${labels}}`) || (labels === '' && l.startsWith(`${name} `)));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

export async function auditEvents(runtime: Runtime): Promise<AuditEvent[]> {
  const out: AuditEvent[] = [];
  for (;;) {
    const page = await runtime.audit()!.store.readLeaves(out.length, 10_000);
    out.push(...page.map((l) => JSON.parse(fromUtf8(l.leaf)) as AuditEvent));
    if (page.length < 10_000) return out;
  }
}

/** Polls `probe` until it returns a value other than undefined (or gives up after `tries`). */
export async function eventually<T>(probe: () => Promise<T | undefined> | T | undefined, tries = 200, everyMs = 50): Promise<T | undefined> {
  for (let i = 0; i < tries; i++) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return undefined;
}
