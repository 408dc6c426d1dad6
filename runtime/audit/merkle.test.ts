import t from 'tap';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { createHasher, rootOfLeafHashes, verifyConsistency, verifyInclusion, rootFromInclusionProof, splitPoint } from './merkle.ts';
import { MemoryTree } from './memory-tree.ts';
import { inclusionPlan, consistencyPlan, rangeNodes } from './tree.ts';
import { fromHex, toHex, bytesEqual } from '../encoding/bytes.ts';
import { createNobleProvider } from '../crypto/noble.ts';
import { createNodeProvider } from '../crypto/node.ts';

/*
 * Known answers from Certificate Transparency's Merkle test data, as published in
 * github.com/transparency-dev/merkle: testonly/constants.go (LeafInputs, RootHashes, NodeHashes)
 * and proof/verify_test.go (inclusionProofs, consistencyProofs; their leaf numbers are 1-based,
 * converted to 0-based indexes here).
 */
const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'];
const EMPTY_ROOT = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
const LEAF_HASHES = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  '96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7',
  '0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7',
  '07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7',
  'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b',
  '4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658',
  'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f',
  '46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1',
];
const INCLUSION: { index: number; size: number; proof: string[] }[] = [
  { index: 0, size: 1, proof: [] },
  { index: 0, size: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { index: 5, size: 8, proof: ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { index: 2, size: 3, proof: ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125'] },
  { index: 1, size: 5, proof: ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
];
const CONSISTENCY: { oldSize: number; newSize: number; proof: string[] }[] = [
  { oldSize: 1, newSize: 1, proof: [] },
  { oldSize: 1, newSize: 8, proof: ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4'] },
  { oldSize: 6, newSize: 8, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
  { oldSize: 2, newSize: 5, proof: ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b'] },
  { oldSize: 6, newSize: 7, proof: ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7'] },
];

const sha256Node = (d: Uint8Array) => new Uint8Array(createHash('sha256').update(d).digest());
const noble = createNobleProvider();
const nodeProvider = createNodeProvider();
const hashers = { node: createHasher(sha256Node), noble: createHasher((d) => noble.sha256(d)), oneShot: createHasher((d) => nodeProvider.sha256(d)) };
const hex = (hs: Uint8Array[]) => hs.map(toHex);

for (const [name, hasher] of Object.entries(hashers)) {
  t.test(`CT known answers (${name} sha256)`, async (t) => {
    t.equal(toHex(hasher.emptyRoot()), EMPTY_ROOT, 'empty tree');
    t.equal(toHex(rootOfLeafHashes(hasher, [])), EMPTY_ROOT);
    const tree = new MemoryTree(hasher);
    t.equal(toHex(tree.root()), EMPTY_ROOT);
    LEAVES.forEach((l, i) => {
      t.equal(toHex(hasher.hashLeaf(fromHex(l))), LEAF_HASHES[i], `leaf hash ${i}`);
      tree.appendLeaf(fromHex(l));
      t.equal(toHex(tree.root()), ROOTS[i], `incremental root of size ${i + 1}`);
      t.equal(toHex(rootOfLeafHashes(hasher, LEAVES.slice(0, i + 1).map((x) => hasher.hashLeaf(fromHex(x))))), ROOTS[i], `recursive root ${i + 1}`);
    });
    for (let s = 1; s <= 8; s++) t.equal(toHex(tree.rootAt(s)), ROOTS[s - 1], `historic root ${s}`);
    for (const v of INCLUSION) {
      const proof = tree.inclusionProof(v.index, v.size);
      t.same(hex(proof), v.proof, `inclusion ${v.index} in ${v.size}`);
      t.ok(verifyInclusion(hasher, v.index, v.size, fromHex(LEAF_HASHES[v.index]!), v.proof.map(fromHex), fromHex(ROOTS[v.size - 1]!)));
    }
    for (const v of CONSISTENCY) {
      const proof = tree.consistencyProof(v.oldSize, v.newSize);
      t.same(hex(proof), v.proof, `consistency ${v.oldSize} -> ${v.newSize}`);
      t.ok(verifyConsistency(hasher, v.oldSize, v.newSize, fromHex(ROOTS[v.oldSize - 1]!), fromHex(ROOTS[v.newSize - 1]!), v.proof.map(fromHex)));
    }
  });
}

const hasher = hashers.node;

t.test('leaf hashes through the reused prefix buffer and above it, in any order, are SHA-256(0x00 || leaf)', async (t) => {
  const oneShot = hashers.oneShot;
  for (const size of [0, 1, 64, 4095, 4096, 4097, 9000, 3, 4096, 0]) {
    const leaf = new Uint8Array(size).map((_, i) => (i * 31 + size) & 0xff);
    const want = toHex(sha256Node(new Uint8Array([0x00, ...leaf])));
    t.equal(toHex(hasher.hashLeaf(leaf)), want, `createHash, ${size} bytes`);
    t.equal(toHex(oneShot.hashLeaf(leaf)), want, `one-shot, ${size} bytes`);
  }
});

t.test('edge rules of PROTOCOL.md section 8', async (t) => {
  const a = fromHex(ROOTS[0]!);
  const b = fromHex(ROOTS[1]!);
  const empty = fromHex(EMPTY_ROOT);
  t.ok(verifyConsistency(hasher, 0, 5, empty, b, []), 'from size 0: empty proof');
  t.notOk(verifyConsistency(hasher, 0, 5, empty, b, [a]), 'from size 0: non-empty proof refused');
  t.notOk(verifyConsistency(hasher, 0, 5, a, b, []), 'size 0 with a non-empty-tree root refused');
  t.ok(verifyConsistency(hasher, 3, 3, a, a, []), 'equal sizes, equal roots');
  t.notOk(verifyConsistency(hasher, 3, 3, a, b, []), 'equal sizes, different roots');
  t.notOk(verifyConsistency(hasher, 3, 3, a, a, [a]), 'equal sizes, non-empty proof');
  t.notOk(verifyConsistency(hasher, 4, 3, a, b, [a]), 'shrinking');
  t.notOk(verifyConsistency(hasher, 1, 2, a, b, []), 'growing with an empty proof');
  t.notOk(verifyInclusion(hasher, 0, 0, a, [], a), 'no leaf in an empty tree');
  t.notOk(verifyInclusion(hasher, 1, 1, a, [], a), 'index beyond size');
  t.throws(() => rootFromInclusionProof(hasher, 0, 2, a, [new Uint8Array(31)]), { code: 'bad_proof' });
});

t.test('sizes above 2^32 use arithmetic, not 32-bit bit operators', async (t) => {
  const size = 2 ** 40 + 2 ** 33 + 5;
  t.equal(splitPoint(size), 2 ** 40);
  const plan = inclusionPlan(size - 1, size);
  // Path of the lone last leaf: the 4-leaf subtree before it, then the 2^33 and 2^40 subtrees.
  t.same(plan.map((g) => g.map((r) => [r.level, r.index])), [[[2, (2 ** 40 + 2 ** 33) / 4]], [[33, 2 ** 40 / 2 ** 33]], [[40, 0]]]);
  t.same(rangeNodes(2 ** 40, size).map((r) => r.level), [33, 2, 0]);
  const cplan = consistencyPlan(2 ** 40, size);
  t.same(cplan.map((g) => g.map((r) => r.level)), [[33, 2, 0]], 'the old tree is a complete subtree: its root is implicit');
  // A consistent synthetic tree of 2^36 + 2^34 + 7 leaves: all leaves before the last seven are
  // the same hash A, so any complete node over them is A hashed up `level` times (cheap), and
  // the nodes that touch the distinct tail are hashed honestly.
  const A = hasher.hashLeaf(new Uint8Array([0xaa]));
  const uniformEnd = 2 ** 36 + 2 ** 34;
  const bigger = uniformEnd + 7;
  const big = 2 ** 35 + 3;
  const uniform: Uint8Array[] = [A];
  for (let l = 1; l <= 40; l++) uniform.push(hasher.hashChildren(uniform[l - 1]!, uniform[l - 1]!));
  const nodeHash = (level: number, index: number): Uint8Array => {
    const start = index * 2 ** level;
    if (start + 2 ** level <= uniformEnd) return uniform[level]!;
    if (level === 0) return hasher.hashLeaf(new TextEncoder().encode(`tail ${index}`));
    return hasher.hashChildren(nodeHash(level - 1, 2 * index), nodeHash(level - 1, 2 * index + 1));
  };
  const fold = (refs: { level: number; index: number }[]) => {
    let acc = nodeHash(refs[refs.length - 1]!.level, refs[refs.length - 1]!.index);
    for (let i = refs.length - 2; i >= 0; i--) acc = hasher.hashChildren(nodeHash(refs[i]!.level, refs[i]!.index), acc);
    return acc;
  };
  const oldRoot = fold(rangeNodes(0, big));
  const newRoot = fold(rangeNodes(0, bigger));
  const proof = consistencyPlan(big, bigger).map(fold);
  t.ok(verifyConsistency(hasher, big, bigger, oldRoot, newRoot, proof), 'consistency 2^35+3 -> 2^36+2^34+7');
  t.notOk(verifyConsistency(hasher, big + 1, bigger, oldRoot, newRoot, proof));
  const p2 = consistencyPlan(2 ** 36, bigger).map(fold);
  t.ok(verifyConsistency(hasher, 2 ** 36, bigger, uniform[36]!, newRoot, p2), 'from a power-of-two size above 2^32');
  t.notOk(verifyConsistency(hasher, 2 ** 36, bigger, uniform[36]!, newRoot, p2.slice(1)));
  for (const leafIndex of [bigger - 3, 2 ** 33 + 5]) {
    const incl = inclusionPlan(leafIndex, bigger).map(fold);
    t.ok(verifyInclusion(hasher, leafIndex, bigger, nodeHash(0, leafIndex), incl, newRoot), `inclusion of ${leafIndex}`);
    t.notOk(verifyInclusion(hasher, leafIndex, bigger, nodeHash(0, leafIndex), incl, oldRoot));
  }
  const tail = bigger - 3;
  t.notOk(verifyInclusion(hasher, tail - 1, bigger, nodeHash(0, tail), inclusionPlan(tail, bigger).map(fold), newRoot));
});

/** Every way of altering a valid proof that must make it fail. */
function alterations(proof: Uint8Array[]): { what: string; proof: Uint8Array[] }[] {
  const out: { what: string; proof: Uint8Array[] }[] = [];
  proof.forEach((_, i) => {
    const p = proof.map((h) => h.slice());
    p[i]![i % 32]! ^= 1 << i % 8;
    out.push({ what: `bit flipped in element ${i}`, proof: p });
  });
  if (proof.length > 0) {
    out.push({ what: 'last element dropped', proof: proof.slice(0, -1) });
    out.push({ what: 'first element dropped', proof: proof.slice(1) });
  }
  if (proof.length > 1) out.push({ what: 'two elements swapped', proof: [proof[1]!, proof[0]!, ...proof.slice(2)] });
  out.push({ what: 'element appended', proof: [...proof, new Uint8Array(32).fill(7)] });
  out.push({ what: 'element prepended', proof: [new Uint8Array(32).fill(7), ...proof] });
  return out.filter((a) => a.proof.length !== proof.length || a.proof.some((h, i) => !bytesEqual(h, proof[i]!)));
}

// One shared tree of random size for the property runs (built once: cheap, immutable).
const MAX = 300;
const shared = new MemoryTree(hasher);
const leafHashes: Uint8Array[] = [];
for (let i = 0; i < MAX; i++) {
  shared.appendLeaf(new TextEncoder().encode(`leaf ${i}`));
  leafHashes.push(hasher.hashLeaf(new TextEncoder().encode(`leaf ${i}`)));
}

t.test('property: every inclusion proof verifies; any alteration fails', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: MAX }).chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 0, max: size - 1 }))), ([size, index]) => {
      const root = shared.rootAt(size);
      if (!bytesEqual(root, rootOfLeafHashes(hasher, leafHashes.slice(0, size)))) return false;
      const proof = shared.inclusionProof(index, size);
      if (!verifyInclusion(hasher, index, size, leafHashes[index]!, proof, root)) return false;
      for (const alt of alterations(proof)) if (verifyInclusion(hasher, index, size, leafHashes[index]!, alt.proof, root)) return false;
      if (size > 1 && verifyInclusion(hasher, (index + 1) % size, size, leafHashes[index]!, proof, root)) return false;
      return true;
    }),
    { numRuns: 400 },
  );
  t.pass('400 random (size, index) pairs');
});

t.test('property: every consistency proof verifies; any alteration fails', async (t) => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: MAX }).chain((n) => fc.tuple(fc.integer({ min: 0, max: n }), fc.constant(n))), ([m, n]) => {
      const oldRoot = shared.rootAt(m);
      const newRoot = shared.rootAt(n);
      const proof = shared.consistencyProof(m, n);
      if (!verifyConsistency(hasher, m, n, oldRoot, newRoot, proof)) return false;
      for (const alt of alterations(proof)) if (verifyConsistency(hasher, m, n, oldRoot, newRoot, alt.proof)) return false;
      if (m > 0 && m < n) {
        if (verifyConsistency(hasher, m - 1, n, oldRoot, newRoot, proof)) return false;
        if (verifyConsistency(hasher, m, n, newRoot, oldRoot, proof)) return false;
        const wrongOld = oldRoot.slice();
        wrongOld[0]! ^= 1;
        if (verifyConsistency(hasher, m, n, wrongOld, newRoot, proof)) return false;
      }
      return true;
    }),
    { numRuns: 400 },
  );
  t.pass('400 random (m, n) pairs');
});
