import t from 'tap';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { goldenVectorFiles, serializeVectors } from './registry.ts';

// Regenerating the golden vectors must reproduce the committed files byte for byte.
const here = dirname(fileURLToPath(import.meta.url));
const files = goldenVectorFiles();
for (const [file, content] of Object.entries(files)) {
  t.test(`${file} is reproduced by npm run vectors`, async (t) => {
    t.equal(serializeVectors(content), readFileSync(join(here, file), 'utf8'));
  });
}
t.pass(`${Object.keys(files).length} golden vector files checked`);
