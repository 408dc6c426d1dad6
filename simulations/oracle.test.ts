import t from 'tap';
import { decodeToken } from '../runtime/capability/token.ts';
import { GatewayPipeline } from '../runtime/mcp/pipeline.ts';
import { INVARIANTS } from './invariants.ts';
import { runScenario } from './runner.ts';
import { Truth, type Decision } from './system/truth.ts';
import type { World } from './world.ts';

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

t.test('a revocation counts against the decisions taken after it, not those before it in the same millisecond', async (t) => {
  const truth = new Truth({} as World); // the oracle reads no world
  truth.tokens.set('tok', { id: 'tok', sub: 'did:a', tools: ['search'], pathPrefix: 'p', nbfMs: 0, expMs: 10_000 });
  truth.issue({ callId: 'a:c1', agent: 'a', agentDid: 'did:a', tokenId: 'tok', tool: 'search', args: {}, issuedAt: 0 });
  const judge = (d: Decision) => truth.oracleRefuses({ ...d, tool: 'search', args: {} });
  const before = truth.decisionFor('a:c1#1', 5000);
  truth.revoked('tok');
  const after = truth.decisionFor('a:c1#2', 5000);
  t.equal(judge(before), null, 'decided first, at the same clock reading: stands');
  t.equal(judge(after), 'revoked', 'decided after it learned the revocation: refused');
  t.equal(judge({ ...before, order: Infinity }), 'revoked', 'judged as of the end of the run');
});
