// Gives a worker thread a TypeScript loader. Node 20 cannot load .ts files by itself: when the
// parent did not pass one down (execArgv), tsx is registered here. Probing with a throwaway
// module keeps a failed import (which Node caches) off the real ones. Plain JS, so a worker
// entry can import it before anything else.
try {
  await import('./ts-probe.ts');
} catch (err) {
  if (err?.code !== 'ERR_UNKNOWN_FILE_EXTENSION') throw err;
  const { register } = await import('tsx/esm/api');
  register();
}
