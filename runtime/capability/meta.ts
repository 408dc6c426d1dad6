import { isPlainObject } from './grant.ts';
import { CAPABILITY_META_KEY } from './token.ts';

/**
 * The compact token travels in the encrypted MCP request as params._meta["talos/capability"]
 * (CAPABILITY_META_KEY). `takeCapability` returns it together with a copy of `params` from
 * which it is removed (and `_meta` dropped when nothing else is left in it), so what goes
 * upstream never carries the token. `params` itself is not modified.
 */
export function takeCapability(params: unknown): { token: string | undefined; params: unknown } {
  if (!isPlainObject(params) || !isPlainObject(params._meta) || !Object.prototype.hasOwnProperty.call(params._meta, CAPABILITY_META_KEY)) {
    return { token: undefined, params };
  }
  const { [CAPABILITY_META_KEY]: raw, ...restMeta } = params._meta;
  const { _meta: _dropped, ...rest } = params;
  const stripped = Object.keys(restMeta).length ? { ...rest, _meta: restMeta } : rest;
  return { token: typeof raw === 'string' ? raw : undefined, params: stripped };
}

/** Puts the compact token into a copy of `params` (client side). */
export function attachCapability(params: Record<string, unknown> | undefined, token: string): Record<string, unknown> {
  const base = params ?? {};
  const meta = isPlainObject(base._meta) ? base._meta : {};
  return { ...base, _meta: { ...meta, [CAPABILITY_META_KEY]: token } };
}
