import type { Test } from 'tap';
import { createHash } from 'node:crypto';
import { createNodeProvider } from '../crypto/node.ts';
import { bytesEqual, toHex, utf8 } from '../encoding/bytes.ts';
import { jcsBytes } from '../encoding/jcs.ts';
import { AuditLog } from '../audit/log.ts';
import { createHasher, verifyConsistency, verifyInclusion } from '../audit/merkle.ts';
import { MemoryTree } from '../audit/memory-tree.ts';
import { LightClient, ForkError } from '../audit/light-client.ts';
import { checkForkEvidence } from '../audit/fork.ts';
import { verifyStoredLog } from '../audit/verify.ts';
import { sampleEvent } from '../audit/testing.ts';
import { leafBytes } from '../audit/event.ts';
import type { AuditStore } from './audit-store.ts';
import { auditCommands } from '../cli/commands/audit.ts';
import { verifierKeyString } from '../audit/note.ts';

/**
 * The AuditStore contract, run against every adapter: SQLite (file and in memory), PostgreSQL,
 * and the simulator's store (simulations/audit-store.ts). Each adapter's test gives a factory
 * for a fresh empty store plus raw tampering hooks (what an attacker with access to the
 * database could do), so the same cases run against every adapter; what an adapter cannot do
 * (a second handle, a restart, being opened by the CLI) it leaves out, and the cases that need
 * it are not registered for it.
 */
export interface Tamper {
  setLeaf(index: number, leaf: Uint8Array): Promise<void>;
  deleteLeaf(index: number): Promise<void>;
  /** Moves the leaf at `from` to the unused index `to`. */
  moveLeaf(from: number, to: number): Promise<void>;
  setCheckpointNote(size: number, note: string): Promise<void>;
  /** Deletes events, nodes and head (checkpoints stay), as before a history rewrite. */
  wipeTree(): Promise<void>;
}

export interface StoreFixture {
  store: AuditStore;
  /** The store as `talos audit --store` names it, when the CLI can open it. */
  spec?: string;
  /**
   * Another handle on the same database (a second process or gateway). Without it, the
   * concurrency case runs two logs over the one handle.
   */
  second?(): Promise<AuditStore>;
  /**
   * Durable adapters only: the process holding `store` stops (as abruptly as the adapter's
   * test can make it: the simulated store crashes, losing uncommitted transactions) and a new
   * one opens the same database; returns the new handle. (The real kill -9 of SQLite and
   * PostgreSQL writers is audit-crash.test.ts.)
   */
  restart?(): Promise<AuditStore>;
  tamper: Tamper;
  cleanup(): Promise<void>;
}

export const crypto = createNodeProvider();
export const hasher = createHasher((d) => crypto.sha256(d));
const ORIGIN = 'talos.test/audit';
const LOG_SEED = new Uint8Array(createHash('sha256').update('contract log key').digest());
const logKey = { origin: ORIGIN, seed: LOG_SEED };
const logPub = crypto.ed25519PublicKey(LOG_SEED);

async function fill(log: AuditLog, n: number, batch = 37, salt = ''): Promise<void> {
  for (let i = 0; i < n; i += batch) {
    const events = [];
    for (let j = i; j < Math.min(n, i + batch); j++) events.push(sampleEvent(j, salt));
    await log.appendEvents(events);
  }
}

async function verify(store: AuditStore) {
  return verifyStoredLog(store, { crypto, hasher, origin: ORIGIN, publicKey: logPub });
}

/** Runs `talos audit verify --json` on the store through the command module. */
async function runVerifyCli(spec: string): Promise<{ code: number; stdout: string }> {
  const verifyCommand = auditCommands.find((c) => c.name === 'audit verify')!;
  let stdout = '';
  const code = await verifyCommand.run(
    { options: { store: spec, vkey: verifierKeyString(crypto, ORIGIN, logPub) }, positionals: [] },
    { stdout: (x) => (stdout += x), stderr: () => {}, env: {}, cwd: process.cwd(), json: true, interactive: false },
  );
  return { code, stdout };
}

/**
 * Registers the contract's cases on `t`. `open` is called once per case for a fresh empty
 * store; `durable` says the fixture can restart it (then the durability case runs).
 */
export function auditStoreContract(t: Test, open: () => Promise<StoreFixture>, options: { durable: boolean }): void {
  const withStore = (name: string, fn: (t: Test, f: StoreFixture, log: AuditLog) => Promise<void>) =>
    t.test(name, async (t) => {
      const f = await open();
      try {
        await fn(t, f, new AuditLog(f.store, hasher));
      } finally {
        await f.cleanup();
      }
    });

  withStore('appends in order; roots and proofs match the reference tree', async (t, f, log) => {
    const ref = new MemoryTree(hasher);
    t.same(await f.store.head(), { size: 0, root: hasher.emptyRoot() }, 'empty head');
    let total = 0;
    for (const size of [1, 2, 5, 8, 13, 1, 64, 3]) {
      const events = Array.from({ length: size }, (_, i) => sampleEvent(total + i));
      const r = await log.appendEvents(events);
      t.equal(r.first, total, 'first index follows the previous batch');
      events.forEach((e, i) => {
        ref.appendLeaf(leafBytes(e));
        t.ok(bytesEqual(r.leafHashes[i]!, hasher.hashLeaf(jcsBytes(e))));
      });
      total += size;
      t.equal(r.size, total);
      t.equal(toHex(r.root), toHex(ref.root()), `root after ${total}`);
    }
    const head = await f.store.head();
    t.equal(head.size, total);
    for (const size of [1, 7, 8, 50, total]) t.equal(toHex(await log.rootAt(size)), toHex(ref.rootAt(size)), `historic root ${size}`);
    for (const [index, size] of [[0, 1], [0, total], [total - 1, total], [40, 77], [63, 64], [64, 97]] as const) {
      const proof = await log.inclusionProof(index, size);
      t.same(proof.map(toHex), ref.inclusionProof(index, size).map(toHex), `inclusion ${index}/${size}`);
      t.ok(verifyInclusion(hasher, index, size, ref.inclusionProof(index, size).length >= 0 ? hasher.hashLeaf(leafBytes(sampleEvent(index))) : new Uint8Array(), proof, ref.rootAt(size)));
    }
    for (const [m, n] of [[1, total], [8, 64], [13, 97], [64, 97], [97, 97], [0, 5]] as const) {
      const proof = await log.consistencyProof(m, n);
      t.same(proof.map(toHex), ref.consistencyProof(m, n).map(toHex), `consistency ${m}->${n}`);
      t.ok(verifyConsistency(hasher, m, n, ref.rootAt(m), ref.rootAt(n), proof));
    }
    await t.rejects(log.inclusionProof(0, total + 1), { code: 'bad_size' });
    const page = await f.store.readLeaves(10, 5);
    t.same(page.map((p) => p.index), [10, 11, 12, 13, 14]);
    t.same(page[0]!.leaf, leafBytes(sampleEvent(10)));
    t.same(await f.store.readLeaf(total), null);
  });

  withStore('leaf hashes computed by the caller give the same tree; a wrong count or size is refused', async (t, f, log) => {
    await fill(log, 5);
    const leaves = [6, 7, 8].map((i) => leafBytes(sampleEvent(i)));
    const hashes = leaves.map((l) => hasher.hashLeaf(l));
    const r = await f.store.append(leaves, hashes);
    t.same(r.leafHashes, hashes);
    const ref = new MemoryTree(hasher);
    for (let i = 0; i < 5; i++) ref.appendLeaf(leafBytes(sampleEvent(i)));
    for (const l of leaves) ref.appendLeaf(l);
    t.ok(bytesEqual((await f.store.head()).root, ref.rootAt(8)), 'the same root as hashing in the store');
    const before = await f.store.head();
    await t.rejects(f.store.append(leaves, hashes.slice(1)), { code: 'bad_batch' });
    await t.rejects(f.store.append(leaves, [hashes[0]!, hashes[1]!, new Uint8Array(31)]), { code: 'bad_batch' });
    t.same(await f.store.head(), before, 'nothing written');
    t.ok((await verify(f.store)).ok);
  });

  withStore('a refused batch changes nothing', async (t, f, log) => {
    await fill(log, 10);
    const before = await f.store.head();
    await t.rejects(f.store.append([utf8('ok'), new Uint8Array(64 * 1024 + 1)]), { code: 'bad_batch' });
    await t.rejects(f.store.append([]), { code: 'bad_batch' });
    await t.rejects(log.appendEvents([sampleEvent(10), { ...sampleEvent(11), args: 'secret' } as never]), { code: 'bad_event' });
    t.same(await f.store.head(), before);
    t.same(await f.store.readLeaf(10), null);
    t.ok((await verify(f.store)).ok);
  });

  withStore('concurrent appenders on one database never share an index', async (t, f, log) => {
    const other = f.second ? await f.second() : f.store;
    try {
      const log2 = new AuditLog(other, hasher);
      const results = await Promise.all([
        ...Array.from({ length: 10 }, (_, b) => log.appendEvents(Array.from({ length: 9 }, (_, i) => sampleEvent(1000 * b + i, 'a')))),
        ...Array.from({ length: 10 }, (_, b) => log2.appendEvents(Array.from({ length: 11 }, (_, i) => sampleEvent(1000 * b + i, 'b')))),
      ]);
      const ranges = results.map((r) => [r.first, r.size] as const).sort((a, b) => a[0] - b[0]);
      for (let i = 1; i < ranges.length; i++) t.equal(ranges[i]![0], ranges[i - 1]![1], 'batches are contiguous and disjoint');
      t.equal((await f.store.head()).size, 200);
      const report = await verify(f.store);
      t.ok(report.ok, 'the interleaved log verifies');
      t.equal(report.size, 200);
    } finally {
      if (other !== f.store) await other.close();
    }
  });

  if (options.durable) {
    withStore('acknowledged appends survive a restart; an unacknowledged batch is all there or not at all', async (t, f, log) => {
      await fill(log, 50, 10);
      const cp = await log.checkpoint(crypto, logKey);
      const acked = (await f.store.head()).size;
      const unacked = Array.from({ length: 7 }, (_, i) => leafBytes(sampleEvent(500 + i, 'unacked')));
      // Its caller dies with the process: whether it committed is for the store to say.
      f.store.append(unacked).catch(() => {});
      const after = await f.restart!();
      const head = await after.head();
      t.ok(head.size === acked || head.size === acked + unacked.length, `head ${head.size}: the whole batch or none of it`);
      for (let i = 0; i < acked; i++) {
        if (!bytesEqual((await after.readLeaf(i)) ?? new Uint8Array(), leafBytes(sampleEvent(i)))) t.fail(`acknowledged event ${i} did not survive`);
      }
      t.same(await after.latestCheckpoint(), { size: acked, note: cp.note }, 'the checkpoint survived');
      t.ok((await verify(after)).ok, 'the log recomputes cleanly after the restart');
      const next = await new AuditLog(after, hasher).appendEvents([sampleEvent(900, 'after')]);
      t.equal(next.first, head.size, 'appends continue from the recovered head');
      t.ok((await verify(after)).ok);
    });
  }

  withStore('checkpoints are stored and listed', async (t, f, log) => {
    await fill(log, 20);
    const a = await log.checkpoint(crypto, logKey);
    await fill(log, 5, 5, 'more');
    const b = await log.checkpoint(crypto, logKey);
    t.same(await f.store.latestCheckpoint(), { size: 25, note: b.note });
    t.same((await f.store.listCheckpoints(0, 10)).map((c) => c.size), [20, 25]);
    t.same((await f.store.listCheckpoints(21, 10)).map((c) => c.note), [b.note]);
    const report = await verify(f.store);
    t.ok(report.ok);
    t.equal(report.checkpoints, 2);
    t.equal(a.size, 20);
  });

  // Tampering: each case starts from a verified log with signed checkpoints at 40 and 100, and
  // a light client that trusted the checkpoint at 100.
  const tamperCase = (name: string, act: (f: StoreFixture) => Promise<void>, expect: { firstBadIndex: number | null; lightClient: (c: LightClient, f: StoreFixture, log: AuditLog) => Promise<void> }) =>
    withStore(`tamper: ${name}`, async (t, f, log) => {
      await fill(log, 40);
      await log.checkpoint(crypto, logKey);
      await fill(log, 60, 37, 'late');
      const cp = await log.checkpoint(crypto, logKey);
      t.ok((await verify(f.store)).ok, 'verifies before tampering');
      const client = new LightClient(crypto, { origin: ORIGIN, publicKey: logPub, trusted: cp.note });
      await act(f);
      const report = await verify(f.store);
      t.notOk(report.ok, 'verify detects it');
      t.equal(report.firstBadIndex, expect.firstBadIndex, 'and names the first bad index');
      if (f.spec !== undefined) {
        const cli = await runVerifyCli(f.spec);
        t.equal(cli.code, 1, '`talos audit verify` exits 1');
        t.equal(JSON.parse(cli.stdout).firstBadIndex, expect.firstBadIndex, '`talos audit verify` names the same first bad index');
      }
      await expect.lightClient(client, f, new AuditLog(f.store, hasher));
    });

  /** The light client checks what the (tampered) store serves for `index`. */
  const clientRejectsLeaf = (index: number) => async (c: LightClient, f: StoreFixture, log: AuditLog) => {
    const leaf = await f.store.readLeaf(index);
    const proof = await log.inclusionProof(index, c.checkpoint!.size).catch(() => []);
    if (leaf === null) return; // the log cannot produce the event: nothing to accept
    if (c.verifyLeaf(leaf, index, proof)) throw new Error(`light client accepted tampered leaf ${index}`);
  };

  tamperCase('an event changed', (f) => f.tamper.setLeaf(17, leafBytes({ ...sampleEvent(17), decision: 'deny', reason: 'forged' })), {
    firstBadIndex: 17,
    lightClient: clientRejectsLeaf(17),
  });
  tamperCase('an event deleted', (f) => f.tamper.deleteLeaf(55), {
    firstBadIndex: 55,
    lightClient: async (c, f, log) => {
      // The original event 55 can no longer be served with a valid proof (it is gone), and
      // whatever is served next in its place does not verify at 55.
      if ((await f.store.readLeaf(55)) !== null) throw new Error('event 55 still stored');
      const next = await f.store.readLeaf(56);
      if (c.verifyLeaf(next!, 55, await log.inclusionProof(55, 100))) throw new Error('accepted a shifted leaf');
    },
  });
  tamperCase('two events reordered', async (f) => {
    await f.tamper.moveLeaf(30, 1000);
    await f.tamper.moveLeaf(31, 30);
    await f.tamper.moveLeaf(1000, 31);
  }, { firstBadIndex: 30, lightClient: clientRejectsLeaf(30) });
  tamperCase('an event inserted', async (f) => {
    for (let i = 99; i >= 70; i--) await f.tamper.moveLeaf(i, i + 1);
    await f.tamper.setLeaf(70, leafBytes(sampleEvent(9999)));
  }, { firstBadIndex: 70, lightClient: clientRejectsLeaf(70) });
  tamperCase('a stored checkpoint edited', async (f) => {
    const cp = (await f.store.listCheckpoints(100, 1))[0]!;
    await f.tamper.setCheckpointNote(100, cp.note.replace(/\n100\n/, '\n99\n'));
  }, {
    firstBadIndex: null, // no event is bad: the problem names the checkpoint
    lightClient: async (c, f) => {
      const served = (await f.store.latestCheckpoint())!;
      let code = '';
      try {
        c.update(served.note, []);
      } catch (e) {
        code = (e as { code: string }).code;
      }
      if (code !== 'bad_signature') throw new Error(`light client did not refuse the edited checkpoint (${code})`);
      if (c.checkpoint!.size !== 100) throw new Error('light client state changed');
    },
  });
  tamperCase('history rewritten and re-signed by the log key', async (f) => {
    // The operator rewrites event 50 and everything after it, rebuilds the tree, and signs.
    const events = Array.from({ length: 100 }, (_, i) => (i < 40 ? sampleEvent(i) : sampleEvent(i - 40, 'late')));
    events[50] = { ...events[50]!, decision: 'deny', reason: 'forged' };
    await f.tamper.wipeTree();
    const log = new AuditLog(f.store, hasher);
    await log.appendEvents(events);
    await fill(log, 20, 20, 'after');
    await log.checkpoint(crypto, logKey);
  }, {
    firstBadIndex: 40,
    lightClient: async (c, f, log) => {
      const served = (await f.store.latestCheckpoint())!;
      try {
        c.update(served.note, await log.consistencyProof(100, served.size));
        throw new Error('light client accepted a rewritten history');
      } catch (e) {
        if (!(e instanceof ForkError)) throw e;
        if (!checkForkEvidence(crypto, e.evidence, logPub)) throw new Error('fork evidence does not check');
        if (c.checkpoint!.size !== 100) throw new Error('light client state changed');
      }
    },
  });
}
