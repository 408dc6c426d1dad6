import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

/**
 * Where the reference MCP servers installed from npm live: their bin entry point, resolved from
 * their package.json, so they are started as `process.execPath <script>` (never through npx).
 */
export type ReferenceServer = 'server-everything' | 'server-filesystem' | 'server-memory';

const require = createRequire(import.meta.url);

export function referenceServerScript(name: ReferenceServer): string {
  const pkgFile = require.resolve(`@modelcontextprotocol/${name}/package.json`);
  const pkg = JSON.parse(readFileSync(pkgFile, 'utf8')) as { bin: string | Record<string, string> };
  const bin = typeof pkg.bin === 'string' ? pkg.bin : Object.values(pkg.bin)[0]!;
  return join(dirname(pkgFile), bin);
}
