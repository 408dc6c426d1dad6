/** See buffer-pool.mjs. */
export function wipingPoolAllocations<T>(fn: () => T): T;
