import { TunnelError } from './errors.ts';

/**
 * The JSON-RPC 2.0 shapes the tunnel handles, checked by hand on the hot path (the SDK's zod
 * schemas do the same job more slowly). Anything else is refused as an invalid request.
 */
export type RequestId = string | number;

export interface RpcRequest {
  jsonrpc: '2.0';
  id: RequestId;
  method: string;
  params?: Record<string, unknown>;
}
export interface RpcNotification {
  jsonrpc: '2.0';
  method: string;
  params?: Record<string, unknown>;
}
export interface RpcResult {
  jsonrpc: '2.0';
  id: RequestId;
  result: Record<string, unknown>;
}
export interface RpcError {
  jsonrpc: '2.0';
  id: RequestId | null;
  error: { code: number; message: string; data?: unknown };
}
export type RpcResponse = RpcResult | RpcError;
export type RpcMessage = RpcRequest | RpcNotification | RpcResponse;

/** Longest method name accepted (the audit schema's limit). */
export const MAX_METHOD_LENGTH = 128;
/** MCP tool names: printable ASCII, at most 128 characters (the audit schema's limit). */
export const TOOL_NAME = /^[\x21-\x7e]{1,128}$/;
const METHOD = /^[\x21-\x7e]{1,128}$/;

export const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

function validId(id: unknown): id is RequestId {
  return (typeof id === 'string' && id.length <= 256) || (typeof id === 'number' && Number.isSafeInteger(id));
}

/** Classifies one decoded JSON value; throws TunnelError('invalid_request') for anything else. */
export function toRpcMessage(value: unknown): RpcMessage {
  if (!isPlainObject(value) || value.jsonrpc !== '2.0') throw new TunnelError('invalid_request', 'not a JSON-RPC 2.0 message');
  if ('method' in value) {
    if (typeof value.method !== 'string' || !METHOD.test(value.method)) throw new TunnelError('invalid_request', 'bad method name');
    if (value.params !== undefined && !isPlainObject(value.params)) throw new TunnelError('invalid_request', 'params must be an object');
    for (const k of Object.keys(value)) {
      if (k !== 'jsonrpc' && k !== 'id' && k !== 'method' && k !== 'params') throw new TunnelError('invalid_request', `unexpected field ${JSON.stringify(k)}`);
    }
    if ('id' in value) {
      if (!validId(value.id)) throw new TunnelError('invalid_request', 'bad request id');
      return value as unknown as RpcRequest;
    }
    return value as unknown as RpcNotification;
  }
  if ('id' in value && (validId(value.id) || value.id === null) && ('result' in value || 'error' in value)) {
    return value as unknown as RpcResponse;
  }
  throw new TunnelError('invalid_request', 'not a request, notification or response');
}

export const isRequest = (m: RpcMessage): m is RpcRequest => 'method' in m && 'id' in m;
export const isNotification = (m: RpcMessage): m is RpcNotification => 'method' in m && !('id' in m);

export function rpcError(id: RequestId | null, code: number, message: string, data?: unknown): RpcError {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}
