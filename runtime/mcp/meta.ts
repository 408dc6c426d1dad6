import { CAPABILITY_META_KEY } from '../capability/index.ts';
import { isPlainObject } from './jsonrpc.ts';

/**
 * Talos keys in MCP `params._meta`. The capability token rides there, inside the encrypted
 * payload, under CAPABILITY_META_KEY; every key in the talos namespace is removed before a
 * request goes upstream, so no token (or anything else of ours) ever reaches an MCP server.
 */
export { CAPABILITY_META_KEY };

/** Any _meta key whose lower-cased form starts with this is ours and never leaves the gateway. */
export const TALOS_META_PREFIX = 'talos';

export function capabilityFrom(params: Record<string, unknown> | undefined): string | undefined {
  const meta = params?._meta;
  if (!isPlainObject(meta)) return undefined;
  const v = meta[CAPABILITY_META_KEY];
  return typeof v === 'string' ? v : undefined;
}

/** A copy of params without any talos _meta key (and without _meta when nothing else is left). */
export function stripTalosMeta(params: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
  if (!params || !('_meta' in params)) return params;
  const { _meta, ...rest } = params;
  if (!isPlainObject(_meta)) return rest;
  const kept: Record<string, unknown> = {};
  let n = 0;
  for (const [k, v] of Object.entries(_meta)) {
    if (k.toLowerCase().startsWith(TALOS_META_PREFIX)) continue;
    kept[k] = v;
    n++;
  }
  return n > 0 ? { ...rest, _meta: kept } : rest;
}

/** A copy of params with the token added to _meta (client side). */
export function withCapability(params: Record<string, unknown> | undefined, token: string): Record<string, unknown> {
  const p = params ?? {};
  const meta = isPlainObject(p._meta) ? p._meta : {};
  return { ...p, _meta: { ...meta, [CAPABILITY_META_KEY]: token } };
}
