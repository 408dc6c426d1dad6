import type { Client } from '@modelcontextprotocol/sdk/client/index.js';

/**
 * The tunnel benchmark's two ways of calling, shared by the direct baseline (main thread) and
 * the agents through Talos (worker thread), so both paths are measured the same way.
 */
export const callOnce = (c: Client, i: number) => c.callTool({ name: 'echo', arguments: { message: `m${i}` } });

/** `calls` calls one at a time, round-robin over the clients: one round-trip sample each. */
export async function sequentialCalls(clients: Client[], calls: number): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await callOnce(clients[i % clients.length]!, i);
    samples.push(performance.now() - t0);
  }
  return samples;
}

/** Every client in a closed loop for `ms`: the round-trip samples and the calls per second. */
export async function closedLoop(clients: Client[], ms: number): Promise<{ perSecond: number; samples: number[] }> {
  const samples: number[] = [];
  const start = performance.now();
  const end = start + ms;
  await Promise.all(
    clients.map(async (c, k) => {
      while (performance.now() < end) {
        const t0 = performance.now();
        await callOnce(c, k);
        samples.push(performance.now() - t0);
      }
    }),
  );
  return { perSecond: (samples.length * 1000) / (performance.now() - start), samples };
}
