import t from 'tap';
import { providers } from '../crypto/index.ts';
import { fromHex } from '../encoding/bytes.ts';
import { didFromPublicKey } from '../identity/did.ts';
import { CapabilityChecker } from './checker.ts';
import { MemoryRevocationSource } from './revocation.ts';
import { encodeToken, mintToken } from './token.ts';

// A `uri` glob must hold for what an upstream's URL parser makes of the URI, not only for its
// text: `%2e` dot segments and tab/LF/CR (which the WHATWG parser deletes) would otherwise climb
// out of the granted folder upstream while looking like plain segments here (SPEC 7.3).
for (const crypto of providers()) {
  t.test(`${crypto.name}: a resources/read uri glob cannot be escaped through encoded dot segments`, async (t) => {
    const seed = (n: number) => fromHex(n.toString(16).padStart(2, '0').repeat(32));
    const did = (n: number) => didFromPublicKey(crypto.ed25519PublicKey(seed(n)));
    const T0 = 1_800_000_000;
    const checker = new CapabilityChecker({ crypto, audience: did(4), trustedRoots: [did(1)], revocations: new MemoryRevocationSource() });
    const token = encodeToken(
      mintToken(crypto, { issuerKey: seed(1), sub: did(2), aud: did(4), nbf: T0, exp: T0 + 3600, grants: [{ method: 'resources/read', args: { uri: { glob: 'file:/repo/src/**' } } }] }),
    );
    const read = (uri: string) => checker.check(token, { method: 'resources/read', args: { uri } }, did(2), (T0 + 10) * 1000);
    t.ok(read('file:///repo/src/a.txt').ok, 'inside the grant');
    t.ok(read('file:///repo/src/my%20notes.txt').ok, 'other escapes are plain text');
    for (const uri of ['file:///repo/src/../../etc/passwd', 'file:///repo/src/%2e%2e/%2e%2e/etc/passwd', 'file:///repo/src/.%2E/.%2e/etc/passwd', 'file:///repo/src/.\t./.\t./etc/passwd', 'file:///repo/src/%2E/../../etc/passwd']) {
      t.equal(new URL(uri).pathname.startsWith('/repo/src/'), false, `a URL parser resolves ${JSON.stringify(uri)} outside the grant`);
      const r = read(uri);
      t.equal(r.ok ? 'allowed' : r.code, 'arg_violation', JSON.stringify(uri));
    }
  });
}
