/** Imported once by crypto-worker.mjs to learn whether this thread can already load TypeScript. */
export const canLoadTypeScript = true;
