import t from 'tap';
import { providers } from '../crypto/index.ts';
import { createHasher } from './merkle.ts';
import { MemoryTree } from './memory-tree.ts';
import { signCheckpoint } from './checkpoint.ts';
import { LightClient, ForkError } from './light-client.ts';
import { Witness } from './witness.ts';
import { checkForkEvidence } from './fork.ts';
import { leafBytes } from './event.ts';
import { sampleEvent } from './testing.ts';
import { verifyCosignature } from './cosignature.ts';

const ORIGIN = 'talos.test/lc';

for (const crypto of providers()) {
  const hasher = createHasher((d) => crypto.sha256(d));
  const logSeed = new Uint8Array(32).fill(9);
  const logPub = crypto.ed25519PublicKey(logSeed);
  const key = { origin: ORIGIN, seed: logSeed };
  const build = (n: number, salt = '') => {
    const tree = new MemoryTree(hasher);
    for (let i = 0; i < n; i++) tree.appendLeaf(leafBytes(sampleEvent(i, i >= 30 ? salt : '')));
    return tree;
  };
  const tree = build(100);
  const cpAt = (tr: MemoryTree, size: number) => signCheckpoint(crypto, key, { size, root: tr.rootAt(size) });

  t.test(`light client follows an honest log (${crypto.name})`, async (t) => {
    const c = new LightClient(crypto, { origin: ORIGIN, publicKey: logPub });
    t.equal(c.storedState(), '');
    t.ok(c.update(cpAt(tree, 10).note, []), 'first checkpoint adopted (trust on first use of the pinned key)');
    t.ok(c.update(cpAt(tree, 64).note, tree.consistencyProof(10, 64)));
    t.notOk(c.update(cpAt(tree, 64).note, []), 'same checkpoint: unchanged');
    t.notOk(c.update(cpAt(tree, 20).note, tree.consistencyProof(20, 64)), 'older consistent checkpoint ignored');
    t.throws(() => c.update(cpAt(tree, 100).note, tree.consistencyProof(10, 100)), { code: 'inconsistent' }, 'proof for the wrong sizes');
    t.equal(c.checkpoint!.size, 64, 'nothing changed on refusal');
    t.ok(c.update(cpAt(tree, 100).note, tree.consistencyProof(64, 100)));
    t.ok(c.verifyEvent(sampleEvent(42), 42, tree.inclusionProof(42, 100)));
    t.notOk(c.verifyEvent(sampleEvent(43), 42, tree.inclusionProof(42, 100)));
    t.throws(() => c.verifyEvent({ ...sampleEvent(42), extra: 1 } as never, 42, []), { code: 'bad_event' });
    t.equal(c.storedState(), cpAt(tree, 100).note, 'stores only the newest note');
    const restored = new LightClient(crypto, { origin: ORIGIN, publicKey: logPub, trusted: c.storedState() });
    t.equal(restored.checkpoint!.size, 100);
    // A proof that is not a list of hashes (JSON from the network) is a typed refusal, not a
    // TypeError from the fork evidence builder; nothing changes.
    for (const bad of [null, undefined, 'x', [null], [1], {}]) {
      t.throws(() => c.update(cpAt(tree, 90).note, bad as never), { name: 'AuditError', code: 'bad_proof' }, `proof ${JSON.stringify(bad)}`);
    }
    t.equal(c.checkpoint!.size, 100, 'nothing changed on a bad proof');
    const otherSeed = new Uint8Array(32).fill(3);
    t.throws(() => c.update(signCheckpoint(crypto, { origin: ORIGIN, seed: otherSeed }, { size: 200, root: tree.root() }).note, []), { code: 'unknown_key' });
  });

  t.test(`light client reports forks with evidence anyone can check (${crypto.name})`, async (t) => {
    const forked = build(100, 'fork'); // same first 30 events, different after
    const c = new LightClient(crypto, { origin: ORIGIN, publicKey: logPub, trusted: cpAt(tree, 50).note });
    const sameSize = (() => {
      try {
        c.update(cpAt(forked, 50).note, []);
      } catch (e) {
        return e;
      }
    })();
    t.type(sameSize, ForkError);
    t.equal((sameSize as ForkError).evidence.kind, 'same_size');
    t.ok(checkForkEvidence(crypto, (sameSize as ForkError).evidence, logPub));
    t.notOk(checkForkEvidence(crypto, (sameSize as ForkError).evidence, crypto.ed25519PublicKey(new Uint8Array(32).fill(4))), 'not evidence against another key');
    const grown = (() => {
      try {
        c.update(cpAt(forked, 90).note, forked.consistencyProof(50, 90));
      } catch (e) {
        return e;
      }
    })();
    t.type(grown, ForkError);
    const ev = (grown as ForkError).evidence;
    t.equal(ev.kind, 'inconsistent');
    t.ok(checkForkEvidence(crypto, ev, logPub), 'the forked log\'s own proof convicts it');
    t.notOk(checkForkEvidence(crypto, { ...ev, notes: [cpAt(tree, 50).note, cpAt(tree, 90).note] }, logPub), 'honest checkpoints are not evidence');
    t.equal(c.checkpoint!.size, 50);
  });

  t.test(`witness cosigns only consistent checkpoints (${crypto.name})`, async (t) => {
    const wSeed = new Uint8Array(32).fill(7);
    const wKey = { name: 'witness.test/w1', seed: wSeed };
    let now = 1_700_000_000;
    const w = new Witness(crypto, wKey, [{ origin: ORIGIN, publicKey: logPub }], {}, () => now++);
    const a = cpAt(tree, 30);
    const first = w.cosign(a.note, ORIGIN, []);
    t.same(verifyCosignature(crypto, a.note + first.line, 'witness.test/w1', crypto.ed25519PublicKey(wSeed)), { name: 'witness.test/w1', time: 1_700_000_000 });
    const b = cpAt(tree, 80);
    t.throws(() => w.cosign(b.note, ORIGIN, tree.consistencyProof(20, 80)), { code: 'inconsistent' });
    const ok = w.cosign(b.note, ORIGIN, tree.consistencyProof(30, 80));
    t.ok(ok.line.startsWith('\u2014 witness.test/w1 '));
    t.throws(() => w.cosign(cpAt(tree, 60).note, ORIGIN, []), { code: 'stale_checkpoint' });
    const forked = build(100, 'fork');
    t.throws(() => w.cosign(cpAt(forked, 90).note, ORIGIN, forked.consistencyProof(80, 90)), { code: 'fork' });
    t.throws(() => w.cosign(cpAt(tree, 90).note, ORIGIN, null as never), { name: 'AuditError', code: 'bad_proof' });
    t.equal(w.lastCosigned(ORIGIN)!.size, 80, 'state unchanged by refusals');
    const restored = new Witness(crypto, wKey, [{ origin: ORIGIN, publicKey: logPub }], w.state());
    t.throws(() => restored.cosign(cpAt(tree, 60).note, ORIGIN, []), { code: 'stale_checkpoint' }, 'persisted state is honoured');
    t.throws(() => w.cosign(a.note, 'other.origin/x', []), { code: 'unknown_key' });
    // A client that requires the witness accepts only cosigned checkpoints.
    const c = new LightClient(crypto, { origin: ORIGIN, publicKey: logPub, witnesses: [{ name: 'witness.test/w1', publicKey: crypto.ed25519PublicKey(wSeed) }] });
    t.throws(() => c.update(b.note, []), { code: 'missing_cosignature' });
    t.ok(c.update(b.note + ok.line, []));
  });
}
