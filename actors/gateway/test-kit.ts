import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import { openCheckpoint } from '../../runtime/audit/checkpoint.ts';
import type { AuditEvent } from '../../runtime/audit/event.ts';
import { createHasher, verifyInclusion } from '../../runtime/audit/merkle.ts';
import { encodeToken, mintToken, type Grant } from '../../runtime/capability/index.ts';
import { resolveConfig, type UpstreamConfig } from '../../runtime/config/config.ts';
import { createCryptoProvider } from '../../runtime/crypto/index.ts';
import type { CryptoProvider } from '../../runtime/crypto/provider.ts';
import { fromUtf8 } from '../../runtime/encoding/bytes.ts';
import { generateIdentity, type Identity } from '../../runtime/identity/index.ts';
import { TalosClientTransport } from '../../runtime/mcp/client-transport.ts';
import { transportFor, type TransportFactory } from '../../runtime/mcp/upstream-connection.ts';
import { startGateway, type Gateway } from './index.ts';

/**
 * Shared set-up for the tunnel's end-to-end tests: a real gateway (real upstream servers, real
 * sessions, real capability checker and audit log) and agents using the SDK's own Client.
 */
export interface Kit {
  gw: Gateway;
  crypto: CryptoProvider;
  issuer: Identity;
  agent(grants: Grant[], options?: { identity?: Identity; sub?: string; expSeconds?: number }): Promise<{ client: Client; identity: Identity; token: string }>;
  events(): Promise<{ index: number; event: AuditEvent }[]>;
  /** Checks a signed checkpoint and an inclusion proof for every leaf; returns the leaves checked. */
  verifyAll(): Promise<number>;
  close(): Promise<void>;
}

export async function startKit(options: {
  upstreams: Record<string, unknown>[];
  limits?: Record<string, unknown>;
  redisUrl?: string;
  redisPrefix?: string;
  transports?: Record<string, TransportFactory>;
  breaker?: Record<string, unknown>;
}): Promise<Kit> {
  const crypto = createCryptoProvider();
  const issuer = generateIdentity(crypto);
  const config = resolveConfig(
    {
      v: 1,
      gateway: { listen: { port: 0 }, name: 'talos.test/gateway' },
      trustedIssuers: [issuer.did],
      upstreams: options.upstreams,
      ...(options.limits ? { limits: options.limits } : {}),
      ...(options.breaker ? { breaker: options.breaker } : {}),
      ...(options.redisUrl ? { redis: { url: options.redisUrl, prefix: options.redisPrefix ?? `t${Date.now()}:` } } : {}),
    },
    { baseDir: process.cwd() },
  );
  const gw = await startGateway({ config, crypto, ...(options.transports ? { transports: options.transports } : {}) });
  const clients: Client[] = [];
  const kit: Kit = {
    gw,
    crypto,
    issuer,
    async agent(grants, o = {}) {
      const identity = o.identity ?? generateIdentity(crypto);
      const nowS = Math.floor(Date.now() / 1000);
      const token = encodeToken(
        mintToken(crypto, { issuerKey: issuer.sig.secretKey, sub: o.sub ?? identity.did, aud: gw.did, grants, nbf: nowS - 60, exp: nowS + (o.expSeconds ?? 3600) }),
      );
      const client = new Client({ name: 'e2e-agent', version: '1.0.0' });
      await client.connect(new TalosClientTransport({ gateway: gw.url, identity, crypto, token }));
      clients.push(client);
      return { client, identity, token };
    },
    async events() {
      const leaves = await gw.audit.store.readLeaves(0, 10_000);
      return leaves.map((l) => ({ index: l.index, event: JSON.parse(fromUtf8(l.leaf)) as AuditEvent }));
    },
    async verifyAll() {
      const key = { origin: config.gateway.name, seed: gw.identity.sig.secretKey };
      const cp = await gw.audit.log.checkpoint(crypto, key);
      // Anyone holding the gateway's public key can check the checkpoint and the proofs.
      const opened = openCheckpoint(crypto, cp.note, config.gateway.name, gw.identity.sig.publicKey);
      const hasher = createHasher((d) => crypto.sha256(d));
      const leaves = await gw.audit.store.readLeaves(0, opened.size);
      let ok = 0;
      for (const l of leaves) {
        const proof = await gw.audit.log.inclusionProof(l.index, opened.size);
        if (verifyInclusion(hasher, l.index, opened.size, hasher.hashLeaf(l.leaf), proof, opened.root)) ok++;
      }
      return ok === leaves.length ? ok : -1;
    },
    async close() {
      await Promise.allSettled(clients.map((c) => c.close()));
      await gw.stop();
    },
  };
  return kit;
}

/** The configured transport, with every message the gateway sends upstream recorded (a tap, not a fake). */
export function recordingTransport(config: UpstreamConfig, sent: string[]): TransportFactory {
  const { factory } = transportFor(config);
  return () => {
    const t: Transport = factory();
    const send = t.send.bind(t);
    t.send = (message, opts) => {
      sent.push(JSON.stringify(message));
      return send(message, opts);
    };
    return t;
  };
}
