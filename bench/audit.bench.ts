import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createCryptoProvider } from '../runtime/crypto/index.ts';
import { createHasher, verifyInclusion } from '../runtime/audit/merkle.ts';
import { AuditLog } from '../runtime/audit/log.ts';
import { LightClient } from '../runtime/audit/light-client.ts';
import { leafBytes } from '../runtime/audit/event.ts';
import { sampleEvent } from '../runtime/audit/testing.ts';
import { SqliteAuditStore } from '../runtime/store/audit-sqlite.ts';
import { startAuditor } from '../actors/auditor/index.ts';
import { opsPerSecond, target, type Benchmark } from './harness.ts';

/**
 * `npm run bench -- audit [--events N] [--seconds S]`
 *  - durable appends through the auditor actor (group commit, SQLite WAL + synchronous=FULL,
 *    a checkpoint every second), against raw SQLite inserts of the same rows with the same
 *    durability settings and the same batch sizes, in the same run;
 *  - inclusion proofs generated from the stored nodes of an N-event log (default 1,000,000);
 *  - inclusion proofs verified;
 *  - the light client's stored bytes against the full log's bytes.
 */
const arg = (args: string[], name: string, def: number) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : def;
};

const bench: Benchmark = async (args) => {
  const N = arg(args, 'events', 1_000_000);
  const seconds = arg(args, 'seconds', 3);
  const crypto = createCryptoProvider();
  const hasher = createHasher((d) => crypto.sha256(d));
  const dir = mkdtempSync(join(tmpdir(), 'talos-audit-bench-'));
  const key = { origin: 'bench.talos/log', seed: new Uint8Array(32).fill(1) };
  const notes: string[] = [`crypto provider: ${crypto.name}`];
  try {
    // 1. Durable appends via the auditor (what the gateway calls).
    const store = new SqliteAuditStore({ path: join(dir, 'append.db'), hasher });
    const log = new AuditLog(store, hasher);
    let checkpoints = 0;
    const batchSizes: number[] = [];
    const auditor = startAuditor({
      log,
      crypto,
      key,
      config: { maxBatch: 4096, maxQueue: 65_536, checkpointEveryMs: 1000, checkpointEveryEvents: 10_000_000 },
      onCheckpoint: () => checkpoints++,
    });
    const WINDOW = 8192;
    const events = Array.from({ length: 50_000 }, (_, i) => sampleEvent(i));
    let acked = 0;
    let issued = 0;
    const start = performance.now();
    const end = start + seconds * 1000;
    await new Promise<void>((resolve, reject) => {
      const pump = () => {
        while (issued - acked < WINDOW && performance.now() < end) {
          const ev = events[issued++ % events.length]!;
          auditor.append(ev).then(() => {
            acked++;
            if (issued === acked) {
              if (performance.now() >= end) resolve();
              else pump();
            } else if (acked % 1024 === 0) pump();
          }, reject);
        }
      };
      pump();
    });
    const appendSeconds = (performance.now() - start) / 1000;
    const appendRate = acked / appendSeconds;
    await auditor.close();
    const sizeAppended = (await store.head()).size;
    await store.close();
    notes.push(`auditor: ${sizeAppended} events acknowledged in ${appendSeconds.toFixed(2)} s, ${checkpoints} checkpoints signed (every 1000 ms + final)`);

    // Baseline: raw SQLite inserts of the same rows (leaf bytes), same pragmas, batches of 4096.
    const raw = new Database(join(dir, 'raw.db'));
    raw.pragma('journal_mode = WAL');
    raw.pragma('synchronous = FULL');
    raw.exec('CREATE TABLE t (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL)');
    const ins = raw.prepare('INSERT INTO t (idx, leaf) VALUES (?, ?)');
    const leaves = events.map(leafBytes);
    const tx = raw.transaction((from: number, n: number) => {
      for (let i = 0; i < n; i++) ins.run(from + i, leaves[(from + i) % leaves.length]!);
    });
    let rawDone = 0;
    const rawStart = performance.now();
    while (performance.now() - rawStart < seconds * 1000) {
      tx(rawDone, 4096);
      rawDone += 4096;
    }
    const rawRate = rawDone / ((performance.now() - rawStart) / 1000);
    raw.close();
    notes.push('raw baseline: leaf bytes only (no hashing, no tree nodes, no validation, no checkpoints)');

    // 2. A log of N events for proofs: appended straight to the store in 10,000-leaf batches.
    const big = new SqliteAuditStore({ path: join(dir, 'big.db'), hasher });
    const bigLog = new AuditLog(big, hasher);
    const buildStart = performance.now();
    const BATCH = 10_000;
    for (let i = 0; i < N; i += BATCH) {
      const n = Math.min(BATCH, N - i);
      await big.append(Array.from({ length: n }, (_, j) => leaves[(i + j) % leaves.length]!));
    }
    const buildRate = N / ((performance.now() - buildStart) / 1000);
    const cp = await bigLog.checkpoint(crypto, key);
    let seed = 12345;
    const rnd = () => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % N;
    };
    // Proof generation (async API, stored nodes, upper levels cached after warm-up).
    const genMs = seconds * 1000;
    let gen = 0;
    for (let i = 0; i < 2000; i++) await bigLog.inclusionProof(rnd(), N); // warm-up
    const gStart = performance.now();
    const gCpu = process.cpuUsage();
    while (performance.now() - gStart < genMs) {
      for (let i = 0; i < 64; i++) await bigLog.inclusionProof(rnd(), N);
      gen += 64;
    }
    const genRate = gen / ((performance.now() - gStart) / 1000);
    const genCpu = process.cpuUsage(gCpu);
    // CPU time of this process per proof: what a shared, loaded machine distorts least.
    const genPerCpuSecond = gen / ((genCpu.user + genCpu.system) / 1e6);
    // Verification of proofs.
    const samples = await Promise.all(
      Array.from({ length: 512 }, async () => {
        const index = rnd();
        return { index, proof: await bigLog.inclusionProof(index, N), leafHash: hasher.hashLeaf(leaves[index % leaves.length]!) };
      }),
    );
    let k = 0;
    const verifyRate = opsPerSecond(() => {
      const s = samples[k++ % samples.length]!;
      if (!verifyInclusion(hasher, s.index, N, s.leafHash, s.proof, cp.root)) throw new Error('proof failed');
    }, seconds * 1000);
    // 3. Light client storage vs the full log.
    const client = new LightClient(crypto, { origin: key.origin, publicKey: crypto.ed25519PublicKey(key.seed), trusted: cp.note });
    const clientBytes = Buffer.byteLength(client.storedState(), 'utf8');
    const logBytes = await big.byteSize();
    await big.close();
    notes.push(`proof log: ${N} events built at ${Math.round(buildRate)} events/s; ${(statSync(join(dir, 'big.db')).size / 1e6).toFixed(1)} MB on disk`);
    notes.push(`proof length at N=${N}: ${samples[0]!.proof.length} hashes`);
    notes.push(`proof generation: ${Math.round(genPerCpuSecond)} proofs per CPU second of this process (${(1e6 / genPerCpuSecond).toFixed(1)} us CPU per proof)`);

    // Machine speed reference, same run: SHA-256 of one 65-byte node input through the provider
    // (a quiet modern core does roughly 1-2 million per second).
    const nodeInput = new Uint8Array(65);
    const shaRate = opsPerSecond(() => crypto.sha256(nodeInput), 500);
    notes.push(`machine reference: ${Math.round(shaRate)} SHA-256 node hashes/s through the provider in this run`);

    return {
      metrics: {
        durable_appends_per_s: appendRate,
        inclusion_proofs_generated_per_s: genRate,
        inclusion_proofs_verified_per_s: verifyRate,
        light_client_bytes: clientBytes,
        full_log_bytes: logBytes,
      },
      baseline: { durable_appends_per_s: rawRate, full_log_bytes: logBytes, sha256_node_hashes_per_s: shaRate },
      ratios: {
        durable_appends_per_s: appendRate / rawRate,
        light_client_vs_full_log: clientBytes / logBytes,
      },
      targets: {
        durable_appends_per_s: target(appendRate, '>=', 20_000),
        inclusion_proofs_generated_per_s: target(genRate, '>=', 50_000),
        inclusion_proofs_verified_per_s: target(verifyRate, '>=', 10_000),
      },
      notes,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
};

export default bench;
