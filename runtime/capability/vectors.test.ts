import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { providers, seededRandom } from '../crypto/index.ts';
import { fromHex, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { jcs } from '../encoding/jcs.ts';
import { didFromPublicKey } from '../identity/did.ts';
import { CapabilityChecker } from './checker.ts';
import { REFUSAL_ORDER } from './errors.ts';
import { MemoryRevocationSource, verifyRevocation, type Revocation } from './revocation.ts';
import type { Token } from './token.ts';
import { capabilityVectors, type CapabilityVectors } from './vectors.ts';

// Re-verifies the committed golden vectors with both providers: the content (every verdict),
// not just the bytes; and re-derives them with each provider (Ed25519 signing is deterministic).
const here = dirname(fileURLToPath(import.meta.url));
const file = join(here, '../../contracts/vectors/capability.json');
const vectors = JSON.parse(readFileSync(file, 'utf8')) as CapabilityVectors;

t.test('every refusal code has a vector', async (t) => {
  const codes = new Set(vectors.cases.map((c) => (c.expect.ok ? 'ok' : c.expect.code)));
  for (const code of REFUSAL_ORDER) t.ok(codes.has(code), code);
  t.ok(codes.has('ok'));
});

for (const crypto of providers()) {
  t.test(`vectors re-verified with ${crypto.name}`, async (t) => {
    for (const [name, k] of Object.entries(vectors.keys)) {
      t.equal(didFromPublicKey(crypto.ed25519PublicKey(fromHex(k.seed))), k.did, `key ${name}`);
    }
    for (const [name, r] of Object.entries(vectors.revocations)) {
      t.equal(verifyRevocation(crypto, r.revocation), r.valid, `revocation ${name}`);
    }
    for (const c of vectors.cases) {
      const source = new MemoryRevocationSource();
      for (const name of c.revocations) source.inject(vectors.revocations[name]!.revocation);
      const checker = new CapabilityChecker({
        crypto,
        audience: vectors.config.audience,
        trustedRoots: vectors.config.trusted_roots,
        revocations: source,
      });
      t.equal(c.compact, toB64u(utf8(jcs(c.token))), `${c.name}: compact form is base64url(JCS)`);
      const got = checker.check(c.compact, c.request, c.session_did, c.now_ms);
      const again = checker.check(c.compact, c.request, c.session_did, c.now_ms);
      t.same(again, got, `${c.name}: the cached verdict equals the first`);
      if (c.expect.ok) {
        const token = c.token as Token;
        t.same(got, { ok: true, tokenId: c.expect.token_id, grant: token.grants[c.expect.grant_index] }, c.name);
      } else {
        t.match(got, { ok: false, code: c.expect.code }, c.name);
        t.equal(got.ok === false ? got.arg : undefined, c.expect.arg, `${c.name}: argument named`);
      }
      checker.close();
    }
    // Deterministic: each provider re-derives the very same file content.
    const regenerated = capabilityVectors(
      crypto.name === 'noble' ? crypto : (await import('../crypto/index.ts')).createCryptoProvider({ name: 'node', random: seededRandom('x') }),
    );
    t.same(regenerated, vectors, 'the vectors re-derive byte for byte');
  });
}

t.test('a revocation signed over the wrong domain does not verify', async (t) => {
  const r = vectors.revocations.root_revokes_chain2!.revocation as Revocation;
  t.equal(verifyRevocation(providers()[0]!, { ...r, token_id: r.token_id.replace(/^./, (ch) => (ch === 'A' ? 'B' : 'A')) }), false);
});
