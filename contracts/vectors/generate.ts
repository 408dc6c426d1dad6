import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goldenVectorFiles, serializeVectors } from './registry.ts';

/**
 * `npm run vectors` regenerates every golden vector file in contracts/vectors/ from fixed seeds.
 * The output is deterministic; contracts/vectors/golden.test.ts fails when it drifts from
 * what is committed.
 */
const here = dirname(fileURLToPath(import.meta.url));
for (const [file, content] of Object.entries(goldenVectorFiles())) {
  writeFileSync(join(here, file), serializeVectors(content));
  console.log(`wrote contracts/vectors/${file}`);
}
