import { TalosError } from '../errors.ts';

/** A refusal or failure in the MCP tunnel (gateway, upstreams, client transport). */
export class TunnelError extends TalosError {
  /** Extra machine-readable detail returned to the agent (never secrets or arguments). */
  readonly data?: Record<string, unknown>;
  constructor(code: string, message: string, data?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(code, message, options);
    if (data) this.data = data;
  }
}

/**
 * What an agent is told when an upstream's circuit breaker does not let its call through:
 * `retryAfterMs` when the breaker is open (the time until it lets a trial call through).
 */
export function circuitOpenRefusal(upstream: string, retryAfterMs?: number): { message: string; data: Record<string, unknown> } {
  return {
    message: `upstream ${upstream} is unavailable (circuit open)`,
    data: { upstream, breaker: 'open', ...(retryAfterMs !== undefined ? { retryAfterMs } : {}) },
  };
}

/**
 * JSON-RPC error codes the gateway answers with, in the implementation-defined server range
 * (-32000..-32099), away from the SDK's own -32000 (connection closed), -32001 (timeout) and
 * -32042. The `data.talos.reason` string carries the precise refusal code.
 */
export const RPC_ERRORS = {
  unauthorized: -32011,
  rate_limited: -32012,
  budget_exhausted: -32013,
  upstream_unavailable: -32014,
  tool_drift: -32015,
  audit_unavailable: -32016,
  limits_unavailable: -32017,
  overloaded: -32018,
} as const;

export const JSONRPC_INVALID_REQUEST = -32600;
export const JSONRPC_METHOD_NOT_FOUND = -32601;
export const JSONRPC_INVALID_PARAMS = -32602;
export const JSONRPC_INTERNAL_ERROR = -32603;
