import t from 'tap';
import fc from 'fast-check';
import { toHexString, hex } from './vector-files.ts';
import { RUNS, agree, anyBytes, bytes, edKey, flip, noble } from './agreement-helpers.ts';

t.test('Ed25519: keys, signatures and verdicts agree', async (t) => {
  fc.assert(
    fc.property(bytes(32), anyBytes(), fc.nat(), edKey, anyBytes(72), (seed, message, bit, otherKey, otherSig) => {
      const pk = agree((p) => p.ed25519PublicKey(seed));
      const sig = agree((p) => p.ed25519Sign(seed, message));
      const pkBytes = hex(pk.slice('bytes:'.length));
      const sigBytes = hex(sig.slice('bytes:'.length));
      if (agree((p) => p.ed25519Verify(pkBytes, message, sigBytes)) !== 'verdict:true') throw new Error('own signature refused');
      agree((p) => p.ed25519Verify(pkBytes, message, flip(sigBytes, bit)));
      agree((p) => p.ed25519Verify(flip(pkBytes, bit), message, sigBytes));
      agree((p) => p.ed25519Verify(otherKey, message, otherSig));
      agree((p) => p.ed25519IsValidPublicKey(otherKey));
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} runs agree`);
});

t.test('Ed25519: signatures with S reduced below L agree on the equation', async (t) => {
  // Random R and an S that passes the S < L check, so both reach the equation and R decoding.
  fc.assert(
    fc.property(bytes(32), anyBytes(), bytes(32), bytes(32), (seed, message, r, s) => {
      const pk = noble.ed25519PublicKey(seed);
      const sig = new Uint8Array([...r, ...s]);
      sig[63]! &= 0x0f;
      agree((p) => p.ed25519Verify(pk, message, sig));
    }),
    { numRuns: RUNS },
  );
  t.pass(`${RUNS} runs agree`);
});

