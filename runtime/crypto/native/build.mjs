// Builds the native addon (native/*.c, listed in binding.gyp) with the node-gyp that npm
// carries; `npm ci` runs this as the package's install step. Without a C toolchain the build
// fails, says so, and the node provider keeps its other paths (runtime/crypto/native-addon.ts):
// never a failed install.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const gyp = process.env.npm_config_node_gyp;
const why = gyp
  ? spawnSync(process.execPath, [gyp, 'rebuild', '--loglevel=warn'], { cwd: fileURLToPath(new URL('.', import.meta.url)), stdio: 'inherit' }).status === 0
    ? undefined
    : 'node-gyp failed'
  : 'npm did not name its node-gyp (run through npm: npm ci / npm rebuild)';
if (why) console.warn(`talos: the native addon was not built (${why}); HMAC/HKDF use the JavaScript path, ChaCha20-Poly1305, X25519 and Ed25519 node:crypto's`);
