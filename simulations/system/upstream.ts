import { INVARIANTS } from '../invariants.ts';
import type { Packet } from '../network.ts';
import type { SimNode, World } from '../world.ts';
import type { SimAuditor } from './auditor.ts';
import type { Decision, Truth } from './truth.ts';

/**
 * The simulated upstream MCP server. Every forwarded call is where the two central invariants
 * are checked, at the moment the call arrives: the allow decision must already be durable in
 * the audit log, and the independent oracle must agree the call may be made. Like a real MCP
 * server it runs whatever arrives, so a call id arriving twice is a second delivery to an
 * application (the delivered-once invariant); when flapping, it fails or stays silent.
 */
export const UPSTREAM = 'upstream';

export interface ForwardRequest {
  callId: string;
  msgHash: string;
  tool: string;
  args: Record<string, unknown>;
  /** The credential the gateway attached (read from its secret vault). */
  credential: string;
  /** What the gateway decided on, for the oracle. */
  decision: Decision;
}

export interface ForwardResponse {
  callId: string;
  ok: boolean;
  result?: string;
  error?: string;
}

export type UpstreamHealth = 'healthy' | 'failing' | 'silent';

export class SimUpstream implements SimNode {
  readonly name = UPSTREAM;
  readonly kind = 'upstream' as const;
  up = true;
  epoch = 0;
  health: UpstreamHealth = 'healthy';
  executed = 0;
  /** The credential the upstream expects (rotations of the KEK must never change it). */
  expectedCredential = '';

  constructor(
    private readonly world: World,
    private readonly truth: Truth,
    private readonly auditor: SimAuditor,
  ) {
    world.network.attach(this.name, (p) => this.receive(p));
  }

  private receive(p: Packet): void {
    const req = JSON.parse(p.payload) as ForwardRequest;
    const inv = this.world.invariants;
    this.truth.deliver(this.name, req.callId);
    inv.check(INVARIANTS.auditBeforeForward, this.auditor.durablyAllowed(req.msgHash), () => `call ${req.callId} reached the upstream without a durable allow entry (msg_hash ${req.msgHash})`);
    const why = this.truth.oracleRefuses({ ...req.decision, tool: req.tool, args: req.args });
    inv.check(INVARIANTS.oracleAgrees, why === null, () => `call ${req.callId} was allowed but the oracle refuses it: ${why}`);
    inv.check(INVARIANTS.secretsReadable, req.credential === this.expectedCredential, () => `call ${req.callId} carried a wrong upstream credential`);
    if (this.health === 'silent') return;
    let res: ForwardResponse;
    if (this.health === 'failing') res = { callId: req.callId, ok: false, error: 'upstream_error' };
    else {
      res = { callId: req.callId, ok: true, result: `result-${this.executed++}` };
      this.truth.forwards++;
    }
    this.world.network.send(this.name, p.from, 'mcp.result', JSON.stringify(res));
  }

  crash(): void {}
  restart(): void {}
}
