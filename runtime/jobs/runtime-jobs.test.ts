import t from 'tap';
import { Redis } from 'ioredis';
import { createCryptoProvider } from '../crypto/index.ts';
import { generateIdentity } from '../identity/index.ts';
import { createRuntime } from '../index.ts';
import { startTestRedis } from '../redis/test-server.ts';
import { eventually, tunnelConfig } from '../system-test-kit.ts';

// The jobs child of the runtime (contracts/SPEC.md 9.6 and 10.8): any budget window the config
// allows starts, and a jobs child that fails to start releases its scheduler.
const crypto = createCryptoProvider();
const issuer = generateIdentity(crypto);

t.test('a budget window longer than the 30-day job interval bound: the runtime starts', async (t) => {
  for (const windowSeconds of [31 * 24 * 3600, 31_622_400]) {
    const runtime = await createRuntime({
      talos: tunnelConfig(issuer, { limits: { budget: { perAgent: 10, windowSeconds } } }),
      crypto,
      supervision: { maxRestarts: 1, windowMs: 60_000 },
    });
    const jobs = runtime.tga.getSnapshot().context.children.jobs!;
    t.same([jobs.status, jobs.restarts], ['up', 0], `windowSeconds ${windowSeconds}: the jobs child is up, never restarted`);
    await runtime.stop();
  }
});

t.test('a jobs child that fails to start closes its Redis connection', async (t) => {
  const redis = await startTestRedis();
  t.teardown(() => redis.stop());
  const err = await createRuntime({
    talos: tunnelConfig(issuer, { redis: { url: redis.url, prefix: 'failed-jobs:' } }),
    crypto,
    supervision: { maxRestarts: 1, windowMs: 60_000 },
    jobs: { queueName: 'failed-jobs', everyMs: { checkpointPublish: 5 } }, // below the 100 ms bound
  }).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { code: 'runtime_start_failed', message: /jobs: job_bad_interval/ });
  const probe = new Redis(redis.url);
  t.teardown(() => probe.disconnect());
  const others = async () => {
    const list = (await probe.client('LIST')) as string;
    return list.trim().split('\n').length - 1; // without the probe
  };
  const left = await eventually(async () => ((await others()) === 0 ? 0 : undefined));
  t.equal(left, 0, `no connection left open after the failed start (${await others()})`);
});
