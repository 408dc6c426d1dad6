import t from 'tap';
import { decodeTrace } from '../../runtime/inspect/trace.ts';
import { SecretVault } from '../../runtime/secrets/vault.ts';
import { INVARIANTS } from '../invariants.ts';
import { runScenario } from '../runner.ts';
import { sweepScenarios } from '../sweep-check.ts';

sweepScenarios(t, ['kek-rotation']);

t.test('the second rotation lands while the gateway is down', async (t) => {
  for (const seed of [1, 2, 3]) {
    const { events } = decodeTrace((await runScenario('kek-rotation', seed)).trace);
    const at = (kind: string, detail: (e: (typeof events)[number]) => boolean) => events.filter((e) => e.kind === 'fault' && (e as { fault?: string }).fault === kind && detail(e)).map((e) => e.t);
    const rotations = at('kek_rotation', () => true);
    const crash = at('crash', (e) => (e as { target?: string }).target === 'gateway');
    const restart = at('restart', (e) => (e as { target?: string }).target === 'gateway');
    t.equal(rotations.length, 2, `seed ${seed}: two rotations`);
    t.ok(crash.some((c, i) => c < rotations[1]! && rotations[1]! < restart[i]!), `seed ${seed}: rotation at ${rotations[1]} inside a crash (${crash} .. ${restart})`);
  }
});

t.test('a rotation that rewraps nothing is caught by the final check', async (t) => {
  const rotate = SecretVault.prototype.rotate;
  // Broken on purpose: the new KEK becomes primary, the records stay under the old one.
  SecretVault.prototype.rotate = async function (this: SecretVault, kek) {
    this.keyring.add(kek, { primary: true });
    return { primary: kek.id, rewrapped: 0, failed: [], retired: [] } as unknown as Awaited<ReturnType<typeof rotate>>;
  };
  try {
    const r = await runScenario('kek-rotation', 4);
    t.equal(r.violation?.invariant, INVARIANTS.secretsReadable, r.violation?.detail ?? 'no violation');
  } finally {
    SecretVault.prototype.rotate = rotate;
  }
});
