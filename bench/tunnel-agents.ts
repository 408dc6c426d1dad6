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
  if (cmd.phase === 'latency') {
    // In two halves (the same calls in the same round-robin order when half is a multiple of
    // the sessions), with the process's CPU time between them: the first half still pays for
    // the JIT compiling what the short warm-up left cold; the second half shows the rest.
    const half = Math.floor(cmd.calls / 2);
    const samples = await sequentialCalls(clients, half);
    const cpuAtHalf = process.cpuUsage();
    samples.push(...(await sequentialCalls(clients, cmd.calls - half)));
    parentPort!.postMessage({ samples, elapsedMs: performance.now() - start, cpuAtHalf });
    return;
  }
  const samples = (await closedLoop(clients, cmd.ms)).samples;
  parentPort!.postMessage({ samples, elapsedMs: performance.now() - start });
});
parentPort!.postMessage({ ready: true });
