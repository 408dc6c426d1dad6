import t from 'tap';
import { decodeToken } from '../runtime/capability/token.ts';
import { GatewayPipeline } from '../runtime/mcp/pipeline.ts';
import { INVARIANTS } from './invariants.ts';
import { runScenario } from './runner.ts';

/**
 * The policy oracle judges an allow decision on the simulator's own records (who sent the
 * call, the token they presented, the gateway's clock), not on what the pipeline handed the
 * checker: a pipeline bug in those inputs must show up as a violation, not be shared.
 */
type Check = (this: GatewayPipeline, token: string, request: unknown, did: string, nowMs?: number) => Promise<unknown>;

async function withPatchedCheck(patch: (original: Check) => Check, run: () => Promise<void>): Promise<void> {
  const proto = GatewayPipeline.prototype as unknown as { check: Check };
  const original = proto.check;
  proto.check = patch(original);
  try {
    await run();
  } finally {
    proto.check = original;
  }
}

t.test('a pipeline that hands the checker a stale clock is caught (clock-skew)', async (t) => {
  let frozen: number | undefined;
  const violations: string[] = [];
  await withPatchedCheck(
    (original) =>
      function (token, request, did) {
        frozen ??= (this as unknown as { now(): number }).now();
        return original.call(this, token, request, did, frozen);
      },
    async () => {
      for (let seed = 1; seed <= 10 && violations.length === 0; seed++) {
        frozen = undefined;
        const r = await runScenario('clock-skew', seed);
        if (r.violation) violations.push(r.violation.invariant);
      }
    },
  );
  t.same(violations, [INVARIANTS.oracleAgrees]);
});

t.test('a pipeline that checks the token against its own subject is caught (swarm)', async (t) => {
  const violations: string[] = [];
  await withPatchedCheck(
    (original) =>
      function (token, request, did, nowMs) {
        let sub = did;
        try {
          sub = decodeToken(token).sub;
        } catch {
          // not a token: checked as sent
        }
        return original.call(this, token, request, sub, nowMs);
      },
    async () => {
      for (let seed = 1; seed <= 10 && violations.length === 0; seed++) {
        const r = await runScenario('swarm', seed);
        if (r.violation) violations.push(r.violation.invariant);
      }
    },
  );
  t.same(violations, [INVARIANTS.oracleAgrees]);
});
