import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createCryptoProvider } from '../../crypto/index.ts';
import type { CryptoProvider } from '../../crypto/provider.ts';
import { toB64u } from '../../encoding/base64url.ts';
import { fromUtf8 } from '../../encoding/bytes.ts';
import { parseJson } from '../../encoding/json.ts';
import { AuditError } from '../../audit/errors.ts';
import { AuditLog } from '../../audit/log.ts';
import { createHasher, verifyInclusion, type Hasher } from '../../audit/merkle.ts';
import { openCheckpoint } from '../../audit/checkpoint.ts';
import { checkWitnessState, Witness, type WitnessState } from '../../audit/witness.ts';
import { parseSignerKey, parseVerifierKey, signerKeyString, typedVerifierKeyString, SIG_TYPE_COSIGNATURE, SIG_TYPE_ED25519 } from '../../audit/note.ts';
import { verifyStoredLog } from '../../audit/verify.ts';
import { openAuditStoreSpec } from '../../store/audit-open.ts';
import type { AuditStore } from '../../store/audit-store.ts';
import { optionalString, output, requireString, UsageError, writePrivateFile, type CliCommand, type CliContext, type OptionValues } from '../command.ts';
import { progressBar } from '../progress.ts';

/**
 * `talos audit verify|prove|checkpoint|witness|keygen`: operate on a stored audit log.
 * The store is `--store sqlite:<path>` or `--store postgres://…?schema=<s>` (default
 * $TALOS_AUDIT_STORE). Keys use the C2SP/Go note formats: verifier keys
 * `name+keyid+base64(type||pub)`, signer keys `PRIVATE+KEY+name+keyid+base64(type||seed)`.
 */
const STORE_OPTION = { name: 'store', short: 's', type: 'string', description: 'sqlite:<path> or postgres://…[?schema=s] (default $TALOS_AUDIT_STORE)' } as const;
const VKEY_OPTION = { name: 'vkey', type: 'string', description: "the log's verifier key name+keyid+base64 (default $TALOS_AUDIT_VKEY)" } as const;

interface Env {
  crypto: CryptoProvider;
  hasher: Hasher;
}

function env(): Env {
  const crypto = createCryptoProvider();
  return { crypto, hasher: createHasher((d) => crypto.sha256(d)) };
}

/** `readonly`: verify and prove only read, and must leave the store exactly as it was. */
async function withStore<T>(options: OptionValues, ctx: CliContext, e: Env, fn: (store: AuditStore) => Promise<T>, readonly = false): Promise<T> {
  const spec = optionalString(options, 'store') ?? ctx.env.TALOS_AUDIT_STORE;
  if (!spec) throw new UsageError('--store is required (or set TALOS_AUDIT_STORE)');
  const s = spec.startsWith('sqlite:') ? `sqlite:${resolve(ctx.cwd, spec.slice('sqlite:'.length))}` : spec;
  if (s.startsWith('sqlite:') && !existsSync(s.slice('sqlite:'.length)) && !options['create']) {
    throw new AuditError('not_found', `no audit log at ${spec}`);
  }
  const store = await openAuditStoreSpec(s, e.hasher, { readonly });
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

function logVkey(options: OptionValues, ctx: CliContext, e: Env): { name: string; publicKey: Uint8Array } {
  const v = optionalString(options, 'vkey') ?? ctx.env.TALOS_AUDIT_VKEY;
  if (!v) throw new UsageError('--vkey is required (or set TALOS_AUDIT_VKEY)');
  return parseVerifierKey(e.crypto, v);
}

function readSigner(path: string, ctx: CliContext, e: Env, type: number) {
  const k = parseSignerKey(e.crypto, readFileSync(resolve(ctx.cwd, path), 'utf8'));
  if (k.type !== type) throw new AuditError('bad_key', type === SIG_TYPE_ED25519 ? 'not a log (type 0x01) signer key' : 'not a witness (type 0x04) signer key');
  return k;
}

function nonNegative(text: string | undefined, what: string): number | undefined {
  if (text === undefined) return undefined;
  if (!/^(0|[1-9][0-9]*)$/.test(text) || !Number.isSafeInteger(Number(text))) throw new UsageError(`${what} must be a non-negative integer`);
  return Number(text);
}

export const auditCommands: CliCommand[] = [
  {
    name: 'audit verify',
    summary: 'recompute the whole audit log from its events; check every stored checkpoint',
    usage: 'talos audit verify --store SPEC --vkey VKEY',
    examples: ['talos audit verify --store sqlite:audit.db --vkey "$(cat log.vkey)"', 'talos audit verify --store postgres://127.0.0.1/talos?schema=audit --json'],
    options: [STORE_OPTION, VKEY_OPTION],
    async run({ options }, ctx) {
      const e = env();
      const vkey = logVkey(options, ctx, e);
      const report = await withStore(options, ctx, e, async (store) => {
        const bar = progressBar(ctx, 'verifying', (await store.head()).size);
        const r = await verifyStoredLog(store, { crypto: e.crypto, hasher: e.hasher, origin: vkey.name, publicKey: vkey.publicKey, onProgress: (done) => bar.update(done) });
        bar.finish();
        return r;
      }, true);
      output(ctx, report, () =>
        report.ok
          ? `ok: ${report.size} events and ${report.checkpoints} signed checkpoints verified`
          : [`FAILED: first bad index ${report.firstBadIndex ?? '(none: a checkpoint is bad)'}`, ...report.problems.map((p) => `  - ${p.what}`)].join('\n'),
      );
      return report.ok ? 0 : 1;
    },
  },
  {
    name: 'audit prove',
    summary: 'print the inclusion proof of one event (and optionally a consistency proof)',
    usage: 'talos audit prove <index> --store SPEC [--size N] [--consistency-from M] [--vkey VKEY]',
    examples: ['talos audit prove 42 --store sqlite:audit.db', 'talos audit prove 42 --store sqlite:audit.db --vkey "$(cat log.vkey)" --json'],
    positionals: ['index'],
    options: [
      STORE_OPTION,
      { name: 'size', type: 'string', description: 'tree size to prove against (default: the latest checkpoint, else the head)' },
      { name: 'consistency-from', type: 'string', description: 'also print the consistency proof from this size' },
      { ...VKEY_OPTION, description: 'check the proof against the latest signed checkpoint with this key' },
    ],
    async run({ options, positionals }, ctx) {
      const index = nonNegative(positionals[0], 'index');
      if (index === undefined) throw new UsageError('an event index is required');
      const e = env();
      const vkeyText = optionalString(options, 'vkey') ?? ctx.env.TALOS_AUDIT_VKEY;
      const result = await withStore(options, ctx, e, async (store) => {
        const log = new AuditLog(store, e.hasher);
        const latest = await store.latestCheckpoint();
        const size = nonNegative(optionalString(options, 'size'), '--size') ?? latest?.size ?? (await store.head()).size;
        if (index >= size) throw new AuditError('bad_index', `index ${index} is not below the tree size ${size}`);
        const leaf = await store.readLeaf(index);
        if (!leaf) throw new AuditError('not_found', `event ${index} is not stored`);
        const hashes = await log.inclusionProof(index, size);
        const leafHash = e.hasher.hashLeaf(leaf);
        const from = nonNegative(optionalString(options, 'consistency-from'), '--consistency-from');
        const consistency = from === undefined ? undefined : { old_size: from, new_size: size, hashes: (await log.consistencyProof(from, size)).map(toB64u) };
        let verified: boolean | undefined;
        if (vkeyText) {
          const vkey = parseVerifierKey(e.crypto, vkeyText);
          if (!latest || latest.size !== size) throw new AuditError('no_checkpoint', `no signed checkpoint of size ${size} to check against`);
          const cp = openCheckpoint(e.crypto, latest.note, vkey.name, vkey.publicKey);
          verified = verifyInclusion(e.hasher, index, size, leafHash, hashes, cp.root);
        }
        return {
          event: parseJson(fromUtf8(leaf)),
          proof: { index, size, leaf_hash: toB64u(leafHash), hashes: hashes.map(toB64u) },
          ...(consistency ? { consistency } : {}),
          ...(latest && latest.size === size ? { checkpoint: latest.note } : {}),
          ...(verified === undefined ? {} : { verified }),
        };
      }, true);
      output(ctx, result, () =>
        [
          `event ${index} of ${result.proof.size}: ${JSON.stringify(result.event)}`,
          `leaf hash: ${result.proof.leaf_hash}`,
          'inclusion proof (bottom-up):',
          ...result.proof.hashes.map((h) => `  ${h}`),
          ...(result.consistency ? [`consistency proof ${result.consistency.old_size} -> ${result.consistency.new_size}:`, ...result.consistency.hashes.map((h) => `  ${h}`)] : []),
          ...(result.verified === undefined ? [] : [result.verified ? 'verified against the signed checkpoint' : 'DOES NOT VERIFY against the signed checkpoint']),
        ].join('\n'),
      );
      return result.verified === false ? 1 : 0;
    },
  },
  {
    name: 'audit checkpoint',
    summary: 'sign a checkpoint of the log head (with --signer-key), or print the latest one',
    usage: 'talos audit checkpoint --store SPEC [--signer-key FILE]',
    examples: ['talos audit checkpoint --store sqlite:audit.db --signer-key log.key', 'talos audit checkpoint --store sqlite:audit.db'],
    options: [STORE_OPTION, { name: 'signer-key', type: 'string', description: "the log's signer key file (PRIVATE+KEY+…, type 0x01)" }],
    async run({ options }, ctx) {
      const e = env();
      const keyFile = optionalString(options, 'signer-key');
      const cp = await withStore(options, ctx, e, async (store) => {
        if (!keyFile) return store.latestCheckpoint();
        const k = readSigner(keyFile, ctx, e, SIG_TYPE_ED25519);
        const signed = await new AuditLog(store, e.hasher).checkpoint(e.crypto, { origin: k.name, seed: k.seed });
        return { size: signed.size, note: signed.note };
      });
      if (!cp) throw new AuditError('no_checkpoint', 'no checkpoint has been signed yet');
      output(ctx, cp, () => cp.note);
      return 0;
    },
  },
  {
    name: 'audit witness',
    summary: "cosign the log's latest checkpoint after checking it is consistent with the last one cosigned",
    usage: 'talos audit witness --store SPEC --vkey LOG_VKEY --witness-key FILE --state FILE',
    examples: ['talos audit witness --store sqlite:audit.db --vkey "$(cat log.vkey)" --witness-key w.key --state w.state.json'],
    options: [
      STORE_OPTION,
      VKEY_OPTION,
      { name: 'witness-key', type: 'string', description: "the witness's signer key file (PRIVATE+KEY+…, type 0x04)" },
      { name: 'state', type: 'string', description: 'witness state file (last cosigned checkpoint per log), created when missing' },
    ],
    async run({ options }, ctx) {
      const e = env();
      const vkey = logVkey(options, ctx, e);
      const wk = readSigner(requireString(options, 'witness-key'), ctx, e, SIG_TYPE_COSIGNATURE);
      const statePath = resolve(ctx.cwd, requireString(options, 'state'));
      // Checked before the store is opened: a bad state file refuses with nothing changed.
      const state: WitnessState = existsSync(statePath) ? checkWitnessState(parseJson(readFileSync(statePath, 'utf8'))) : {};
      const result = await withStore(options, ctx, e, async (store) => {
        const witness = new Witness(e.crypto, { name: wk.name, seed: wk.seed }, [{ origin: vkey.name, publicKey: vkey.publicKey }], state);
        const latest = await store.latestCheckpoint();
        if (!latest) throw new AuditError('no_checkpoint', 'the log has no checkpoint to cosign');
        const prev = witness.lastCosigned(vkey.name);
        const proof = prev && prev.size <= latest.size ? await new AuditLog(store, e.hasher).consistencyProof(prev.size, latest.size) : [];
        const { line, checkpoint } = witness.cosign(latest.note, vkey.name, proof);
        // The state is saved before the cosignature is published (a crash must not let the
        // witness cosign a conflicting checkpoint later).
        writePrivateFile(statePath, JSON.stringify(witness.state(), null, 2) + '\n');
        const note = latest.note + line;
        await store.putCheckpoint({ size: checkpoint.size, note });
        return { size: checkpoint.size, cosignature: line.trimEnd(), note };
      });
      output(ctx, result, () => result.note);
      return 0;
    },
  },
  {
    name: 'audit keygen',
    summary: 'create a log (or witness) Ed25519 signer key; print its verifier key',
    usage: 'talos audit keygen --name NAME --out FILE [--witness]',
    examples: ['talos audit keygen --name audit.example.com/log --out log.key', 'talos audit keygen --name witness.example.com/w1 --witness --out w.key'],
    options: [
      { name: 'name', type: 'string', description: 'key name: the log origin, or the witness name' },
      { name: 'out', short: 'o', type: 'string', description: 'write the signer key here (mode 0600)' },
      { name: 'witness', type: 'boolean', description: 'a witness cosignature key (type 0x04)' },
      { name: 'force', type: 'boolean', description: 'overwrite an existing file' },
    ],
    async run({ options }, ctx) {
      const e = env();
      const name = requireString(options, 'name');
      const out = resolve(ctx.cwd, requireString(options, 'out'));
      if (existsSync(out) && !options.force) throw new AuditError('file_exists', `${out} exists; pass --force to overwrite it`);
      const type = options.witness ? SIG_TYPE_COSIGNATURE : SIG_TYPE_ED25519;
      const seed = e.crypto.randomBytes(32);
      writePrivateFile(out, signerKeyString(e.crypto, name, seed, type) + '\n');
      const vkey = typedVerifierKeyString(e.crypto, name, e.crypto.ed25519PublicKey(seed), type);
      output(ctx, { vkey, keyFile: out }, () => vkey);
      return 0;
    },
  },
];
