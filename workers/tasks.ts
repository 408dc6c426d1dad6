import { CapabilityError } from '../runtime/capability/errors.ts';
import { decodeToken, type Token } from '../runtime/capability/token.ts';
import { signatureVerdict, verifyChainStatic, type SignatureVerdict } from '../runtime/capability/verify.ts';
import { createHasher } from '../runtime/audit/merkle.ts';
import type { CryptoProvider } from '../runtime/crypto/provider.ts';
import type { Did } from '../runtime/identity/did.ts';
import { verifyObject, type Domain } from '../runtime/identity/signing.ts';
import { respondHandshake, type HandshakeFields, type HandshakeResult, type ResponderPrekeys } from '../runtime/session/handshake.ts';
import { SessionError } from '../runtime/session/errors.ts';

/**
 * The CPU-heavy tasks the worker pool runs: a registry of named batch functions. Each takes a
 * batch of items plus inputs shared by the batch and returns one result per item, so the pool
 * can split a batch across threads and a small batch can run inline with the same function.
 * Items and results cross threads by structured clone: plain data only.
 */
export interface SignedItem {
  publicKey: Uint8Array;
  domain: Domain;
  obj: Record<string, unknown>;
}

export interface ChainVerdict {
  ok: boolean;
  /** The refusal code (PROTOCOL.md section 7) when not ok. */
  code?: string;
}

/** The inputs of respondHandshake, plain data; the responder's signing seed is not among them. */
export interface HandshakeItem {
  responder: { did: string; signingKey: Uint8Array; dh: { secretKey: Uint8Array; publicKey: Uint8Array } };
  initiatorDid: string;
  initiatorSigningKey: Uint8Array;
  fields: HandshakeFields;
  prekeys: ResponderPrekeys;
}

/** respondHandshake's result, or its SessionError as a value (errors lose their class between threads). */
export type HandshakeOutcome = { ok: true; result: HandshakeResult } | { ok: false; code: string; message: string };

const NO_SEED = new Uint8Array(0);

export const TASKS = {
  /** Ed25519 verification of signed objects (bundles, revocations, documents) under the signing rule. */
  'verify-objects': (crypto: CryptoProvider, items: SignedItem[], _shared: null): boolean[] =>
    items.map((it) => verifyObject(crypto, it.publicKey, it.domain, it.obj)),

  /**
   * Uncached capability-token chain verification (signatures, delegation, attenuation, trusted
   * root): the token-only part, as the gateway's checker does on a cache miss. Items are the
   * compact form as it arrives in a request (a string clones across threads far cheaper than
   * the object graph) or token objects.
   */
  'verify-token-chains': (crypto: CryptoProvider, tokens: (string | Token)[], shared: { trustedRoots: string[] }): ChainVerdict[] => {
    const roots = new Set(shared.trustedRoots);
    return tokens.map((token) => {
      let value: unknown = token;
      if (typeof token === 'string') {
        try {
          value = decodeToken(token);
        } catch (err) {
          if (err instanceof CapabilityError) return { ok: false, code: err.code };
          throw err;
        }
      }
      const r = verifyChainStatic(crypto, value, roots);
      return r.ok ? { ok: true } : { ok: false, code: r.code };
    });
  },

  /**
   * The Ed25519 part of a cache miss of the gateway's checker: parse + signatures of each
   * compact token (signatureVerdict); the checker's admitVerified runs every other stage on
   * its own thread. A verdict is a number (-1: all verify), the cheapest result to clone back.
   */
  'verify-token-signatures': (crypto: CryptoProvider, compact: string[], _shared: null): SignatureVerdict[] =>
    compact.map((c) => signatureVerdict(crypto, c)),

  /**
   * The responder's side of X3DH/PQXDH (runtime/session/handshake.ts respondHandshake: the
   * identity-certificate check, the DHs, ML-KEM decapsulation, the KDF) for first messages.
   */
  'respond-handshakes': (crypto: CryptoProvider, items: HandshakeItem[], _shared: null): HandshakeOutcome[] =>
    items.map((it) => {
      // respondHandshake reads the responder's public signing key, never its seed.
      const self = { did: it.responder.did as Did, sig: { secretKey: NO_SEED, publicKey: it.responder.signingKey }, dh: it.responder.dh };
      try {
        return { ok: true, result: respondHandshake(crypto, self, it.initiatorDid as Did, it.initiatorSigningKey, it.fields, it.prekeys) };
      } catch (err) {
        if (err instanceof SessionError) return { ok: false, code: err.code, message: err.message };
        throw err;
      }
    }),

  /** SHA-256 of each item (Merkle leaf hashing of a batch of audit events). */
  'sha256-batch': (crypto: CryptoProvider, items: Uint8Array[], _shared: null): Uint8Array[] =>
    items.map((bytes) => crypto.sha256(bytes)),

  /** RFC 9162 leaf hashes, SHA-256(0x00 || leaf), of a batch of audit leaves (the auditor's large batches). */
  'merkle-leaf-hashes': (crypto: CryptoProvider, leaves: Uint8Array[], _shared: null): Uint8Array[] => {
    const hasher = createHasher((d) => crypto.sha256(d));
    return leaves.map((leaf) => hasher.hashLeaf(leaf));
  },
} as const;

export type TaskName = keyof typeof TASKS;
export type TaskItem<N extends TaskName> = Parameters<(typeof TASKS)[N]>[1][number];
export type TaskShared<N extends TaskName> = Parameters<(typeof TASKS)[N]>[2];
export type TaskResult<N extends TaskName> = ReturnType<(typeof TASKS)[N]>[number];

/** What the pool posts to a worker. */
export interface TaskMessage {
  task: string;
  items: unknown[];
  shared: unknown;
}

export function isTaskName(name: string): name is TaskName {
  return Object.prototype.hasOwnProperty.call(TASKS, name);
}

export function runTask(crypto: CryptoProvider, message: TaskMessage): unknown[] {
  if (!isTaskName(message.task)) throw new Error(`unknown pool task ${JSON.stringify(message.task)}`);
  const fn = TASKS[message.task] as (c: CryptoProvider, items: unknown[], shared: unknown) => unknown[];
  return fn(crypto, message.items, message.shared);
}
