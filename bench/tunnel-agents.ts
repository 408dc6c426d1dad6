import { parentPort, workerData } from 'node:worker_threads';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import type { Identity } from '../runtime/identity/index.ts';
import { TalosClientTransport } from '../runtime/mcp/client-transport.ts';
import { closedLoop, sequentialCalls } from './tunnel-calls.ts';

/**
 * The tunnel benchmark's agents, in a worker thread so that they do not share the gateway's
 * event loop (on a two-core machine: one core for the agents, one for the gateway and its
 * in-process upstream). Commands: latency (one call at a time, round-robin over the sessions)
 * and throughput (every session in a closed loop); answers are the round-trip samples.
 */
interface Setup {
  url: string;
  gatewayDid: string;
  agents: { identity: Identity; token: string }[];
}

const setup = workerData as Setup;
const crypto = createCryptoProvider();
const clients: Client[] = [];
for (const a of setup.agents) {
  const c = new Client({ name: 'bench-agent', version: '1' });
  await c.connect(new TalosClientTransport({ gateway: setup.url, identity: a.identity, crypto, token: a.token, expectGatewayDid: setup.gatewayDid }));
  clients.push(c);
}

parentPort!.on('message', async (cmd: { phase: 'latency'; calls: number } | { phase: 'throughput'; ms: number } | { phase: 'close' }) => {
  if (cmd.phase === 'close') {
    await Promise.all(clients.map((c) => c.close()));
    parentPort!.postMessage({ closed: true });
    return;
  }
  const start = performance.now();
  const samples = cmd.phase === 'latency' ? await sequentialCalls(clients, cmd.calls) : (await closedLoop(clients, cmd.ms)).samples;
  parentPort!.postMessage({ samples, elapsedMs: performance.now() - start });
});
parentPort!.postMessage({ ready: true });
