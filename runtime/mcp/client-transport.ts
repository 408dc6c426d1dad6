import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js';
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js';
import type { CryptoProvider } from '../crypto/provider.ts';
import { parseJson } from '../encoding/json.ts';
import type { Identity } from '../identity/index.ts';
import type { InspectionEvent } from 'xstate';
import { connectTunnelWithActor } from '../net/actor-client.ts';
import { connectTunnel, type TunnelClient } from '../net/client.ts';
import { TunnelError } from './errors.ts';
import { isPlainObject } from './jsonrpc.ts';
import { withCapability } from './meta.ts';

/**
 * An MCP SDK (v1) Transport that carries JSON-RPC through a Talos session, so an unmodified
 * SDK `Client` talks to any MCP server behind a Talos gateway. Every outgoing request gets the
 * agent's capability token in `params._meta` (inside the encrypted payload). Per the SDK's
 * rules: `start()` is called by `connect()`, `close()` fires `onclose`, `send` throws to fail
 * the caller, and `sessionId` appears only after the first send (else `connect` would skip
 * `initialize`). A dropped socket does not close the transport: the tunnel reconnects and resumes
 * the same session; `onclose` fires when the session is over (closed, refused, or reconnection
 * given up).
 */
export interface TalosClientTransportOptions {
  /** ws://host:port of the gateway. */
  gateway: string;
  identity: Identity;
  crypto: CryptoProvider;
  /** Compact capability token (base64url), attached to every request. */
  token: string;
  expectGatewayDid?: string;
  /** Runs the session as an inspectable XState session actor and reports to this hook. */
  inspect?: (event: InspectionEvent) => void;
}

export class TalosClientTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: <T extends JSONRPCMessage>(message: T) => void;
  sessionId?: string;
  private tunnel: TunnelClient | undefined;
  private closed = false;

  /**
   * Whether a message sent now leaves at once. False while the tunnel's socket is down: the
   * session is resumed (same sid, no new handshake) by the next send (runtime/net/reconnecting-socket.ts).
   */
  get connected(): boolean {
    return !this.closed && (this.tunnel?.connected ?? false);
  }

  /** The gateway's DID, once the session is open. */
  get gatewayDid(): string | undefined {
    return this.tunnel?.gatewayDid;
  }

  constructor(private readonly options: TalosClientTransportOptions) {}

  async start(): Promise<void> {
    if (this.tunnel) throw new TunnelError('already_started', 'TalosClientTransport already started');
    const tunnelOptions = {
      url: this.options.gateway,
      identity: this.options.identity,
      crypto: this.options.crypto,
      ...(this.options.expectGatewayDid ? { expectDid: this.options.expectGatewayDid } : {}),
    };
    this.tunnel = this.options.inspect
      ? await connectTunnelWithActor({ ...tunnelOptions, inspect: this.options.inspect })
      : await connectTunnel(tunnelOptions);
    this.tunnel.onmessage = (text) => {
      let msg: unknown;
      try {
        msg = parseJson(text, { allowFloats: true });
      } catch (err) {
        this.onerror?.(new TunnelError('bad_message', `the gateway sent a message that is not JSON: ${(err as Error).message}`));
        return;
      }
      this.onmessage?.(msg as JSONRPCMessage);
    };
    this.tunnel.onclose = () => this.finish();
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (!this.tunnel || this.closed) throw new TunnelError('tunnel_closed', 'the Talos tunnel is not open');
    let out: JSONRPCMessage = message;
    if ('method' in message && 'id' in message) {
      const params = isPlainObject(message.params) ? message.params : undefined;
      out = { ...message, params: withCapability(params, this.options.token) } as JSONRPCMessage;
    }
    this.tunnel.send(JSON.stringify(out));
    this.sessionId ??= this.tunnel.sid;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.tunnel?.close();
    this.finish();
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }
}
