// For threads that work ahead of the thread using their results (x25519-pool-worker.mjs,
// simulations/key-pairs-ahead-worker.mjs): importing this moves the importing thread to the
// lowest priority, so working ahead never takes a core from the thread it serves (on a busy
// machine the work ahead then falls behind and that thread does its own, as without a helper).
// Only on Linux, where the nice value belongs to the calling thread; elsewhere it would be the
// whole process's, so nothing changes there. Plain JavaScript: workers import it without a loader.
import { setPriority } from 'node:os';

if (process.platform === 'linux') {
  try {
    setPriority(19);
  } catch {
    // not allowed here: keep the default priority
  }
}
