/**
 * A runtime process for bullmq.test.ts that takes one run and then dies in the middle of it
 * (the test SIGKILLs it after it prints "started <runId>"). It enqueues that run itself.
 */
import { BullmqScheduler } from '../bullmq.ts';

const [url, queueName] = process.argv.slice(2);
const scheduler = new BullmqScheduler({ url: url!, queueName: queueName!, lockDurationMs: 1000 });
scheduler.onJob('checkpoint', (run) => {
  process.stdout.write(`started ${run.runId}\n`);
  return new Promise<void>(() => {}); // never finishes: the process is killed here
});
await scheduler.start();
await scheduler.enqueue('checkpoint', { size: 42 }, 'cp-42');
