// Gives a worker thread a TypeScript loader. Node 20 cannot load .ts files by itself, and the
// type stripping of later Nodes does not take all of the project's syntax: when the parent did
// not pass a loader down (execArgv), tsx is registered here. Probing with a throwaway module
// keeps a failed import (which Node caches) off the real ones. Plain JS, so a worker entry can
// import it before anything else.
const NO_LOADER = ['ERR_UNKNOWN_FILE_EXTENSION', 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX'];
try {
  await import('./ts-probe.ts');
} catch (err) {
  if (!NO_LOADER.includes(err?.code)) throw err;
  const { register } = await import('tsx/esm/api');
  register();
}
