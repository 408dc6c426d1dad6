import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { McpError } from '@modelcontextprotocol/sdk/types.js';
import type { InspectionEvent } from 'xstate';
import { startGateway } from './index.ts';
import { openCheckpoint } from '../../runtime/audit/checkpoint.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';
import { createHasher, verifyInclusion } from '../../runtime/audit/merkle.ts';
import { encodeToken, mintToken } from '../../runtime/capability/index.ts';
import { resolveConfig } from '../../runtime/config/config.ts';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import { fromUtf8 } from '../../runtime/encoding/bytes.ts';
import { generateIdentity } from '../../runtime/identity/index.ts';
import { TalosClientTransport } from '../../runtime/mcp/client-transport.ts';
import { referenceServerScript } from '../../runtime/mcp/servers.ts';

/**
 * `talos demo`: a gateway in front of the real @modelcontextprotocol/server-filesystem on a
 * temporary folder; an agent whose token allows reading one sub-folder only; allowed and
 * refused calls through the SDK Client; then the signed audit checkpoint and a verified
 * inclusion proof for one of the calls.
 */
export interface DemoCall {
  call: string;
  outcome: 'allowed' | 'refused';
  detail: string;
}

export interface DemoResult {
  gateway: string;
  agent: string;
  folder: string;
  grant: string;
  tools: string[];
  calls: DemoCall[];
  checkpoint: string;
  proof: { leafIndex: number; treeSize: number; event: AuditEvent; path: string[]; verified: boolean };
}

export const DEMO_ORIGIN = 'talos.demo/audit';

export interface DemoOptions {
  /** XState inspection hook: the gateway, upstream, auditor and agent session actors report to it. */
  inspect?: (event: InspectionEvent) => void;
  /** Awaited before each tool call (names the call): lets a watcher look between calls. */
  beforeCall?: (call: string) => Promise<void>;
}

export async function runDemo(log: (line: string) => void = () => {}, options: DemoOptions = {}): Promise<DemoResult> {
  const crypto = createCryptoProvider();
  const folder = realpathSync(mkdtempSync(join(tmpdir(), 'talos-demo-')));
  try {
    mkdirSync(join(folder, 'projects'));
    mkdirSync(join(folder, 'private'));
    writeFileSync(join(folder, 'projects', 'plan.md'), '# Plan\nShip the tunnel.\n');
    writeFileSync(join(folder, 'private', 'salaries.csv'), 'name,salary\n');
    const issuer = generateIdentity(crypto);
    const agent = generateIdentity(crypto);
    const config = resolveConfig(
      {
        v: 1,
        gateway: { listen: { port: 0 }, name: DEMO_ORIGIN },
        trustedIssuers: [issuer.did],
        upstreams: [{ name: 'filesystem', transport: 'stdio', command: 'node', args: [referenceServerScript('server-filesystem'), folder] }],
      },
      { baseDir: folder },
    );
    const gw = await startGateway({ config, crypto, log: (l) => log(`gateway: ${l}`), ...(options.inspect ? { inspect: options.inspect } : {}) });
    try {
      const glob = `${folder}/projects/**`;
      const nowS = Math.floor(Date.now() / 1000);
      const token = mintToken(crypto, {
        issuerKey: issuer.sig.secretKey,
        sub: agent.did,
        aud: gw.did,
        grants: [
          { method: 'tools/call', tool: 'read_text_file', args: { path: { glob } } },
          { method: 'tools/call', tool: 'list_directory', args: { path: { glob: `${folder}/projects` } } },
        ],
        nbf: nowS - 5,
        exp: nowS + 600,
      });
      log(`agent ${agent.did} holds a token for read_text_file and list_directory under ${glob}`);
      const client = new Client({ name: 'talos-demo-agent', version: '0.1.0' });
      await client.connect(
        new TalosClientTransport({
          gateway: gw.url,
          identity: agent,
          crypto,
          token: encodeToken(token),
          expectGatewayDid: gw.did,
          ...(options.inspect ? { inspect: options.inspect } : {}),
        }),
      );
      const calls: DemoCall[] = [];
      const attempt = async (label: string, name: string, args: Record<string, unknown>) => {
        await options.beforeCall?.(label);
        try {
          const r = (await client.callTool({ name, arguments: args })) as { content: { text?: string }[]; isError?: boolean };
          const text = (r.content[0]?.text ?? '').split('\n')[0]!;
          calls.push({ call: label, outcome: 'allowed', detail: text });
        } catch (err) {
          if (!(err instanceof McpError)) throw err;
          const reason = (err.data as { talos?: { reason?: string } })?.talos?.reason ?? String(err.code);
          calls.push({ call: label, outcome: 'refused', detail: reason });
        }
        const c = calls.at(-1)!;
        log(`${c.outcome === 'allowed' ? 'ALLOWED' : 'REFUSED'}  ${label}  -> ${c.detail}`);
      };
      const tools = (await client.listTools()).tools.map((t) => t.name);
      log(`tools/list through the gateway shows only what the token grants: ${tools.join(', ')}`);
      await attempt('read projects/plan.md', 'read_text_file', { path: `${folder}/projects/plan.md` });
      await attempt('list projects/', 'list_directory', { path: `${folder}/projects` });
      await attempt('read projects/../private/salaries.csv', 'read_text_file', { path: `${folder}/projects/../private/salaries.csv` });
      await attempt('read private/salaries.csv', 'read_text_file', { path: `${folder}/private/salaries.csv` });
      await attempt('write projects/evil.md', 'write_file', { path: `${folder}/projects/evil.md`, content: 'x' });
      await client.close();

      // The signed checkpoint, and an inclusion proof for the first allowed call, checked the
      // way an outside verifier would: with the gateway's public key only.
      const cp = await gw.audit.log.checkpoint(crypto, { origin: DEMO_ORIGIN, seed: gw.identity.sig.secretKey });
      const opened = openCheckpoint(crypto, cp.note, DEMO_ORIGIN, gw.identity.sig.publicKey);
      const leaves = await gw.audit.store.readLeaves(0, Math.max(1, opened.size));
      const chosen = leaves.find((l) => {
        const e = JSON.parse(fromUtf8(l.leaf)) as AuditEvent;
        return e.kind === 'request' && e.tool === 'read_text_file' && e.decision === 'allow';
      })!;
      const proof = await gw.audit.log.inclusionProof(chosen.index, opened.size);
      const hasher = createHasher((d) => crypto.sha256(d));
      const verified = verifyInclusion(hasher, chosen.index, opened.size, hasher.hashLeaf(chosen.leaf), proof, opened.root);
      return {
        gateway: gw.did,
        agent: agent.did,
        folder,
        grant: glob,
        tools,
        calls,
        checkpoint: cp.note,
        proof: {
          leafIndex: chosen.index,
          treeSize: opened.size,
          event: JSON.parse(fromUtf8(chosen.leaf)) as AuditEvent,
          path: proof.map((p) => Buffer.from(p).toString('base64')),
          verified,
        },
      };
    } finally {
      await gw.stop();
    }
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
}
