import t from 'tap';
import { readFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { providers } from '../crypto/index.ts';
import { fromB64, fromB64u } from '../encoding/base64url.ts';
import { fromHex, toHex, utf8 } from '../encoding/bytes.ts';
import { jcs } from '../encoding/jcs.ts';
import { createHasher, rootOfLeafHashes, verifyConsistency, verifyInclusion } from './merkle.ts';
import { openCheckpoint } from './checkpoint.ts';
import { verifyCosignature } from './cosignature.ts';
import { parseVerifierKey } from './note.ts';
import { checkEvent } from './event.ts';
import { auditVectors, GOLDEN_ORIGIN, GOLDEN_WITNESS } from './golden.ts';

// Re-verifies the committed vectors' content (not just their bytes) with both providers.
const file = join(dirname(fileURLToPath(import.meta.url)), '../../contracts/vectors/audit.json');
const vectors = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as ReturnType<typeof auditVectors>) : auditVectors();

for (const crypto of providers()) {
  t.test(`audit vectors verify (${crypto.name})`, async (t) => {
    const hasher = createHasher((d) => crypto.sha256(d));
    const leafHashes = vectors.events.map((e) => {
      t.equal(jcs(checkEvent(e.event)), e.leaf_jcs, 'leaf bytes are JCS of a valid event');
      const h = hasher.hashLeaf(utf8(e.leaf_jcs));
      t.equal(toHex(h), e.leaf_hash);
      return h;
    });
    vectors.roots.forEach((r, n) => t.equal(toHex(rootOfLeafHashes(hasher, leafHashes.slice(0, n))), r, `root ${n}`));
    for (const p of vectors.inclusion) {
      t.ok(verifyInclusion(hasher, p.index, p.size, leafHashes[p.index]!, p.hashes.map((h) => fromB64u(h)), fromHex(vectors.roots[p.size]!)), `inclusion ${p.index}/${p.size}`);
    }
    for (const p of vectors.consistency) {
      t.ok(verifyConsistency(hasher, p.old_size, p.new_size, fromHex(vectors.roots[p.old_size]!), fromHex(vectors.roots[p.new_size]!), p.hashes.map((h) => fromB64u(h))), `consistency ${p.old_size}->${p.new_size}`);
    }
    const log = parseVerifierKey(crypto, vectors.log_vkey);
    t.equal(log.name, GOLDEN_ORIGIN);
    const cp = openCheckpoint(crypto, vectors.checkpoint, GOLDEN_ORIGIN, log.publicKey);
    t.equal(cp.size, 10);
    t.equal(toHex(cp.root), vectors.roots[10]);
    const wPub = fromB64(vectors.witness_vkey.split('+').slice(2).join('+')).slice(1);
    t.same(verifyCosignature(crypto, vectors.cosigned_checkpoint, GOLDEN_WITNESS, wPub), { name: GOLDEN_WITNESS, time: vectors.cosignature_time });
    t.equal(openCheckpoint(crypto, vectors.cosigned_checkpoint, GOLDEN_ORIGIN, log.publicKey).size, 10);
  });
}

t.test('the generator reproduces the committed file', async (t) => {
  t.ok(existsSync(file), 'contracts/vectors/audit.json is committed');
  t.same(auditVectors(), vectors);
});
