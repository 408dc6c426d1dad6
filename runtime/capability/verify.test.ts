import t from 'tap';
import { providers } from '../crypto/index.ts';
import { CapabilityChecker } from './checker.ts';
import { MemoryRevocationSource } from './revocation.ts';
import { decodeCompactJson } from './token.ts';
import { capabilityVectors } from './vectors.ts';
import { SIGNATURES_NOT_REACHED, signatureVerdict, verifyChainStatic } from './verify.ts';

// The signature stage run apart (as a pool worker does) and admitted by the checker must give
// every vector the very verdict of a plain check: same code, same message, same order.
const vectors = capabilityVectors();

function checkerFor(crypto: ReturnType<typeof providers>[number], revocations: string[]) {
  const source = new MemoryRevocationSource();
  for (const name of revocations) source.inject(vectors.revocations[name]!.revocation);
  return new CapabilityChecker({ crypto, audience: vectors.config.audience, trustedRoots: vectors.config.trusted_roots, revocations: source });
}

for (const crypto of providers()) {
  t.test(`${crypto.name}: admitVerified(signatureVerdict) gives every vector the plain verdict`, async (t) => {
    for (const c of vectors.cases) {
      const plain = checkerFor(crypto, c.revocations);
      const split = checkerFor(crypto, c.revocations);
      t.equal(split.isCached(c.compact), false, `${c.name}: not cached before`);
      split.admitVerified(c.compact, signatureVerdict(crypto, c.compact));
      t.equal(split.isCached(c.compact), true, `${c.name}: the verdict is cached, refusals too`);
      t.same(split.check(c.compact, c.request, c.session_did, c.now_ms), plain.check(c.compact, c.request, c.session_did, c.now_ms), c.name);
      t.match(split.stats, { cacheMisses: 1, cacheHits: 1 }, `${c.name}: the admission was the miss, the check a hit`);
      plain.close();
      split.close();
    }
  });
}

t.test('the verdict names the first failing link, or that parsing refused before signatures', async (t) => {
  const crypto = providers()[0]!;
  const byName = (prefix: string) => vectors.cases.find((c) => c.name.startsWith(prefix))!;
  t.equal(signatureVerdict(crypto, byName('chain of 3').compact), -1);
  t.equal(signatureVerdict(crypto, byName('bad_signature').compact), 1, 'the tampered link is the presented token (root is 0)');
  t.equal(signatureVerdict(crypto, byName('malformed: unknown field').compact), SIGNATURES_NOT_REACHED);
  t.equal(signatureVerdict(crypto, byName('chain_too_deep').compact), SIGNATURES_NOT_REACHED);
  t.equal(signatureVerdict(crypto, 'not a token'), SIGNATURES_NOT_REACHED);
});

t.test('a verdict that does not fit the chain is ignored: signatures are verified here', async (t) => {
  const crypto = providers()[0]!;
  const roots = new Set(vectors.config.trusted_roots);
  const forged = vectors.cases.find((c) => c.name.startsWith('bad_signature'))!;
  const good = vectors.cases.find((c) => c.name.startsWith('chain of 2'))!;
  const stat = (compact: string, signatures: number) => {
    const d = decodeCompactJson(compact);
    return verifyChainStatic(crypto, d.value, roots, { receivedText: d.text, signatures });
  };
  for (const lie of [SIGNATURES_NOT_REACHED, 2, 7, 0.5, Number.NaN]) {
    t.match(stat(forged.compact, lie), { ok: false, code: 'bad_signature' }, `verdict ${lie} cannot admit a forged token`);
    t.match(stat(good.compact, lie), { ok: true }, `verdict ${lie} does not refuse a good one`);
  }
  t.match(stat(good.compact, 0), { ok: false, code: 'bad_signature', message: /chain link 0/ }, 'a fitting verdict is taken as found');

  // Refusal order holds with a verdict: stages before signatures come first, stages after still run.
  const checker = checkerFor(crypto, []);
  const malformed = vectors.cases.find((c) => c.name.startsWith('malformed: unknown field'))!;
  checker.admitVerified(malformed.compact, -1);
  t.match(checker.check(malformed.compact, malformed.request, malformed.session_did, malformed.now_ms), { ok: false, code: 'malformed' });
  const escalation = vectors.cases.find((c) => c.name.startsWith('grant_escalation: child widens'))!;
  checker.admitVerified(escalation.compact, -1);
  t.match(checker.check(escalation.compact, escalation.request, escalation.session_did, escalation.now_ms), { ok: false, code: 'grant_escalation' });
  const untrusted = vectors.cases.find((c) => c.name === 'untrusted_root')!;
  checker.admitVerified(untrusted.compact, -1);
  t.match(checker.check(untrusted.compact, untrusted.request, untrusted.session_did, untrusted.now_ms), { ok: false, code: 'untrusted_root' });
  checker.close();
});

t.test('admitVerified leaves an entry already cached alone (a late verdict changes nothing)', async (t) => {
  const crypto = providers()[0]!;
  const checker = checkerFor(crypto, []);
  const good = vectors.cases.find((c) => c.name.startsWith('chain of 2'))!;
  t.equal(checker.check(good.compact, good.request, good.session_did, good.now_ms).ok, true);
  checker.admitVerified(good.compact, 0); // a late (wrong) verdict for a token already verified here
  t.equal(checker.check(good.compact, good.request, good.session_did, good.now_ms).ok, true, 'the cached verdict stands');
  t.same(checker.stats, { cacheHits: 1, cacheMisses: 1, revocationsApplied: 0, revocationsIgnored: 0 });
  checker.close();
});
