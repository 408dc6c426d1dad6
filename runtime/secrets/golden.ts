import { createNobleProvider } from '../crypto/noble.ts';
import { seededRandom } from '../crypto/seeded-random.ts';
import { fromB64u, toB64u } from '../encoding/base64url.ts';
import { concatBytes, toHex, utf8 } from '../encoding/bytes.ts';
import { jcsBytes } from '../encoding/jcs.ts';
import { Keyring, deriveKekId, formatKekList } from './keyring.ts';
import { SecretBox, wrappedToBytes, type SecretRef, type WrappedSecret } from './secret-box.ts';

/**
 * Golden vectors for secrets at rest (contracts/vectors/secrets.json, spec section 10.1): fixed
 * KEKs, records sealed with a seeded random source, their byte form, a re-wrap, the associated
 * data, and records that must be refused. Re-verified with both providers by golden.test.ts.
 */
export const dataAadOf = (ref: SecretRef) => concatBytes(utf8('talos/v1/secret-data'), new Uint8Array([0]), jcsBytes({ id: ref.id, purpose: ref.purpose }));
export const dekAadOf = (ref: SecretRef, kek: string) =>
  concatBytes(utf8('talos/v1/secret-dek'), new Uint8Array([0]), jcsBytes({ id: ref.id, kek, purpose: ref.purpose }));

export function secretsVectors() {
  const crypto = createNobleProvider({ random: seededRandom('talos/v1/secrets-vectors') });
  const key1 = new Uint8Array(32).map((_, i) => i);
  const key2 = new Uint8Array(32).map((_, i) => 0xff - i);
  const keks = [
    { id: 'kek-2026-01', key: key1 },
    { id: deriveKekId(crypto, key2), key: key2 },
  ];
  const ring = new Keyring(keks, 'kek-2026-01');
  const box = new SecretBox(crypto, ring);
  const inputs: (SecretRef & { plaintext: Uint8Array })[] = [
    { purpose: 'identity', id: 'did:talos:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK', plaintext: new Uint8Array(64).fill(7) },
    { purpose: 'session-store', id: 'session:AAECAwQFBgcICQoLDA0ODw', plaintext: utf8('{"ratchet":{"n":3}}') },
    { purpose: 'key-file', id: 'empty', plaintext: new Uint8Array(0) },
  ];
  const unwrapDek = (ref: SecretRef, w: WrappedSecret) => {
    const sealed = fromB64u(w.dek);
    return crypto.xchachaOpen(ring.key(w.kek), sealed.subarray(0, 24), sealed.subarray(24), dekAadOf(ref, w.kek));
  };
  const cases = inputs.map((input) => {
    const ref = { purpose: input.purpose, id: input.id };
    const wrapped = box.seal(ref, input.plaintext);
    return {
      purpose: input.purpose,
      id: input.id,
      plaintext_hex: toHex(input.plaintext),
      data_aad_hex: toHex(dataAadOf(ref)),
      dek_aad_hex: toHex(dekAadOf(ref, wrapped.kek)),
      dek_hex: toHex(unwrapDek(ref, wrapped)),
      wrapped,
      bytes_b64u: toB64u(wrappedToBytes(wrapped)),
    };
  });
  ring.setPrimary(keks[1]!.id);
  const first = cases[0]!;
  const rewrapped = box.rewrap({ purpose: first.purpose, id: first.id }, first.wrapped);
  const refusals = [
    { what: 'moved to another record id', purpose: first.purpose, id: 'did:talos:other', wrapped: first.wrapped, code: 'secret_auth_failed' },
    { what: 'moved to another purpose', purpose: 'session-store', id: first.id, wrapped: first.wrapped, code: 'secret_auth_failed' },
    { what: 'relabelled with the other KEK id', purpose: first.purpose, id: first.id, wrapped: { ...first.wrapped, kek: keks[1]!.id }, code: 'secret_auth_failed' },
    { what: 'names a KEK not on the ring', purpose: first.purpose, id: first.id, wrapped: { ...first.wrapped, kek: 'retired' }, code: 'kek_unknown' },
    { what: 'unknown version', purpose: first.purpose, id: first.id, wrapped: { ...first.wrapped, v: 2 }, code: 'secret_malformed' },
  ];
  return {
    description: 'Envelope encryption of secrets at rest (contracts/SPEC.md section 10.1). XChaCha20-Poly1305; nonces from a seeded source.',
    keks: keks.map((k) => ({ id: k.id, key: toB64u(k.key) })),
    kek_list: { text: `kek-2026-01:${toB64u(key1)},${toB64u(key2)}`, primary: 'kek-2026-01', ids: ['kek-2026-01', keks[1]!.id] },
    kek_list_formatted: formatKekList(ring),
    cases,
    rewrap: { purpose: first.purpose, id: first.id, from: first.wrapped, to: rewrapped },
    refusals,
  };
}
