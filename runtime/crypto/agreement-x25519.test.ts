import t from 'tap';
import fc from 'fast-check';
import { toHexString, hex } from './vector-files.ts';
import { RUNS, agree, bytes, noble, xPublic } from './agreement-helpers.ts';

t.test('X25519: public keys and shared secrets agree, low-order inputs refused alike', async (t) => {
  let refusals = 0;
  fc.assert(
    fc.property(bytes(32), bytes(32), xPublic, (a, b, other) => {
      const pa = agree((p) => p.x25519PublicKey(a));
      const pb = agree((p) => p.x25519PublicKey(b));
      const ab = agree((p) => p.x25519(a, hex(pb.slice('bytes:'.length))));
      // Diffie-Hellman symmetry, checked on the noble side only (the line above compared both).
      if (`bytes:${toHexString(noble.x25519(b, hex(pa.slice('bytes:'.length))))}` !== ab) throw new Error('secrets differ');
      if (agree((p) => p.x25519(a, other)).startsWith('refused:')) refusals++;
    }),
    { numRuns: RUNS },
  );
  t.ok(refusals > 0, `some edge keys were refused by both (${refusals})`);
});

