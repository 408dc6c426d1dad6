/** Imported once by typescript-loader.mjs to learn whether this thread can already load TypeScript. */
export const canLoadTypeScript = true;
