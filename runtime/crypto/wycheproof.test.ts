import t from 'tap';
import { CryptoError } from '../errors.ts';
import { providers } from './index.ts';
import { hex, toHexString, wycheproof, type WycheproofFile, type WycheproofTest } from './vector-files.ts';

/**
 * Every test case of every Wycheproof file we carry, on both providers. Each case's outcome is
 * compared with the file's verdict; mismatches are collected (tcId and reason, never secrets)
 * and the number of cases seen must equal the file's numberOfTests.
 *
 * Acceptable cases (only X25519 has them): Talos computes X25519 as RFC 7748 asks, so an
 * acceptable case whose expected shared secret is non-zero must produce exactly that secret, and
 * one whose shared secret is all zeros must be refused with CryptoError('x25519_low_order')
 * (PROTOCOL.md section 2: an all-zero shared secret is an error).
 */

type Outcome = { ok: true; value: unknown } | { ok: false; code: string };

function run(fn: () => unknown): Outcome {
  try {
    return { ok: true, value: fn() };
  } catch (error) {
    if (error instanceof CryptoError) return { ok: false, code: error.code };
    return { ok: false, code: `untyped:${(error as Error).name}` };
  }
}

function expectBytes(out: Outcome, expected: string): string | undefined {
  if (!out.ok) return `refused with ${out.code}`;
  return toHexString(out.value as Uint8Array) === expected ? undefined : 'wrong bytes';
}

function expectRefusal(out: Outcome, code: string): string | undefined {
  if (out.ok) return 'accepted';
  return out.code === code ? undefined : `refused with ${out.code}, expected ${code}`;
}

interface Tally {
  seen: number;
  failures: string[];
  byResult: Record<string, number>;
}

function walk(file: WycheproofFile, check: (test: WycheproofTest, group: Record<string, unknown>) => string | undefined): Tally {
  const tally: Tally = { seen: 0, failures: [], byResult: {} };
  for (const group of file.testGroups) {
    for (const test of group.tests) {
      tally.seen++;
      tally.byResult[test.result] = (tally.byResult[test.result] ?? 0) + 1;
      const problem = check(test, group);
      if (problem !== undefined) tally.failures.push(`tcId ${test.tcId} (${test.result}): ${problem}`);
    }
  }
  return tally;
}

function report(t: Pick<typeof import('tap').default, 'equal' | 'same'>, file: WycheproofFile, tally: Tally): void {
  t.equal(tally.seen, file.numberOfTests, 'every test case counted');
  t.same(tally.failures, [], 'no case disagrees with its verdict');
}

const ZERO32 = '00'.repeat(32);

for (const crypto of providers()) {
  t.test(`${crypto.name}: Wycheproof`, async (t) => {
    t.test('x25519_test.json', async (t) => {
      const file = wycheproof('x25519_test.json');
      let refusedAcceptable = 0;
      let computedAcceptable = 0;
      const tally = walk(file, (test) => {
        const out = run(() => crypto.x25519(hex(test['private']), hex(test['public'])));
        if (test.result === 'invalid') return out.ok ? 'accepted' : undefined;
        if (test['shared'] === ZERO32) {
          if (test.result === 'valid') return 'a valid case with an all-zero secret (policy conflict)';
          refusedAcceptable++;
          return expectRefusal(out, 'x25519_low_order');
        }
        if (test.result === 'acceptable') computedAcceptable++;
        return expectBytes(out, test['shared'] as string);
      });
      report(t, file, tally);
      t.ok(refusedAcceptable > 0, `acceptable all-zero cases refused: ${refusedAcceptable}`);
      t.ok(computedAcceptable > 0, `acceptable non-zero cases computed: ${computedAcceptable}`);
    });

    t.test('ed25519_test.json', async (t) => {
      const file = wycheproof('ed25519_test.json');
      const tally = walk(file, (test, group) => {
        const pk = hex((group['publicKey'] as { pk: string }).pk);
        const verdict = crypto.ed25519Verify(pk, hex(test['msg']), hex(test['sig']));
        return verdict === (test.result === 'valid') ? undefined : `verify returned ${verdict}`;
      });
      report(t, file, tally);
      t.notOk('acceptable' in tally.byResult, 'no acceptable cases to decide');
    });

    for (const [name, seal, open, nonceBits] of [
      ['chacha20_poly1305_test.json', crypto.chachaSeal, crypto.chachaOpen, 96],
      ['xchacha20_poly1305_test.json', crypto.xchachaSeal, crypto.xchachaOpen, 192],
    ] as const) {
      t.test(name, async (t) => {
        const file = wycheproof(name);
        const tally = walk(file, (test, group) => {
          const [key, iv, aad, msg] = [hex(test['key']), hex(test['iv']), hex(test['aad']), hex(test['msg'])];
          const sealed = new Uint8Array([...hex(test['ct']), ...hex(test['tag'])]);
          if (group['ivSize'] !== nonceBits) {
            if (test.result !== 'invalid') return 'a valid case with another nonce size (policy conflict)';
            return (
              expectRefusal(run(() => seal(key, iv, msg, aad)), 'aead_bad_nonce') ??
              expectRefusal(run(() => open(key, iv, sealed, aad)), 'aead_bad_nonce')
            );
          }
          if (test.result === 'invalid') return expectRefusal(run(() => open(key, iv, sealed, aad)), 'aead_auth_failed');
          return (
            expectBytes(run(() => seal(key, iv, msg, aad)), toHexString(sealed)) ??
            expectBytes(run(() => open(key, iv, sealed, aad)), test['msg'] as string)
          );
        });
        report(t, file, tally);
      });
    }

    t.test('hkdf_sha256_test.json', async (t) => {
      const file = wycheproof('hkdf_sha256_test.json');
      const tally = walk(file, (test) => {
        const out = run(() => crypto.hkdfSha256(hex(test['ikm']), hex(test['salt']), hex(test['info']), test['size'] as number));
        return test.result === 'invalid' ? expectRefusal(out, 'hkdf_bad_length') : expectBytes(out, test['okm'] as string);
      });
      report(t, file, tally);
    });

    t.test('hmac_sha256_test.json', async (t) => {
      const file = wycheproof('hmac_sha256_test.json');
      const tally = walk(file, (test, group) => {
        // Truncated tags (tagSize 128) compare the leading bytes of the full HMAC.
        const tagBytes = (group['tagSize'] as number) / 8;
        const mac = toHexString(crypto.hmacSha256(hex(test['key']), hex(test['msg'])).subarray(0, tagBytes));
        const matches = mac === test['tag'];
        return matches === (test.result === 'valid') ? undefined : `tag match was ${matches}`;
      });
      report(t, file, tally);
    });

    t.test('mlkem_768_test.json (key generation from seed, decapsulation)', async (t) => {
      const file = wycheproof('mlkem_768_test.json');
      const tally = walk(file, (test) => {
        const seed = hex(test['seed']);
        const c = hex(test['c']);
        if (test.result === 'invalid') {
          if (seed.length !== 64) {
            return (
              expectRefusal(run(() => crypto.mlkemKeyPair(seed)), 'mlkem_bad_seed') ??
              expectRefusal(run(() => crypto.mlkemDecapsulate(c, seed)), 'mlkem_bad_seed')
            );
          }
          return expectRefusal(run(() => crypto.mlkemDecapsulate(c, seed)), 'mlkem_bad_ciphertext');
        }
        const keys = run(() => crypto.mlkemKeyPair(seed).publicKey);
        // Valid cases include random and bit-flipped ciphertexts: implicit rejection gives K.
        return expectBytes(keys, test['ek'] as string) ?? expectBytes(run(() => crypto.mlkemDecapsulate(c, seed)), test['K'] as string);
      });
      report(t, file, tally);
    });

    t.test('mlkem_768_encaps_test.json (encapsulation with given randomness, modulus check)', async (t) => {
      const file = wycheproof('mlkem_768_encaps_test.json');
      const tally = walk(file, (test) => {
        const out = run(() => crypto.mlkemEncapsulate(hex(test['ek']), hex(test['m'])));
        if (test.result === 'invalid') return expectRefusal(out, 'mlkem_bad_public_key');
        if (!out.ok) return `refused with ${out.code}`;
        const { cipherText, sharedSecret } = out.value as { cipherText: Uint8Array; sharedSecret: Uint8Array };
        if (toHexString(cipherText) !== test['c']) return 'wrong ciphertext';
        return toHexString(sharedSecret) === test['K'] ? undefined : 'wrong shared secret';
      });
      report(t, file, tally);
    });
  });
}

