/**
 * Imported once by typescript-loader.mjs to learn whether this thread can already load the
 * project's TypeScript. The enum is there on purpose: Node's own type stripping (on by default
 * from Node 22.18 / 23.6) loads erasable syntax only, and the project uses more (enums,
 * parameter properties), so only a full loader such as tsx passes this probe.
 */
export enum Probe {
  Loaded,
}
export const canLoadTypeScript = true;
