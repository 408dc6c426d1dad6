import t from 'tap';
import { Redis } from 'ioredis';
import { startTestRedis } from './test-server.ts';

t.test('a private redis-server starts, is killed, restarts on its port and stops', async (t) => {
  const redis = await startTestRedis({ owned: true });
  const client = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => null });
  await client.connect();
  t.equal(await client.ping(), 'PONG');
  await client.quit();
  await redis.kill(true);
  await redis.kill(true); // killing a dead server is a no-op, not a hang
  await redis.restart();
  const again = new Redis(redis.url);
  t.equal(await again.ping(), 'PONG', 'answers again on the same port');
  await again.quit();
  await redis.kill(true);
  await redis.stop(); // stop after a kill returns
});
