import type { CryptoProvider } from '../runtime/crypto/provider.ts';
import { fromHex } from '../runtime/encoding/bytes.ts';
import { didFromPublicKey } from '../runtime/identity/did.ts';
import type { Grant } from '../runtime/capability/grant.ts';
import { delegateToken, mintToken, type Token } from '../runtime/capability/token.ts';

/**
 * The "realistic token" the auth and pool benchmarks measure: a chain of 2 (root -> agent ->
 * sub-agent), 10 tools/call grants with glob constraints on the leaf, each inside one of the
 * root's 10. Keys come from fixed seeds (1: root, 2: agent, 3: sub-agent, 4: gateway).
 */
export const REALISTIC_TOOLS = ['read_text_file', 'read_media_file', 'list_directory', 'directory_tree', 'search_files', 'get_file_info', 'write_file', 'edit_file', 'create_directory', 'move_file'];

export function realisticTokens(crypto: CryptoProvider) {
  const seed = (n: number) => fromHex(n.toString(16).padStart(2, '0').repeat(32));
  const did = (n: number) => didFromPublicKey(crypto.ed25519PublicKey(seed(n)));
  const [ROOT, AGENT, SUB, GW] = [1, 2, 3, 4];
  const T0 = Math.floor(Date.now() / 1000) - 60;
  const rootGrants: Grant[] = REALISTIC_TOOLS.map((tool, i) => ({ method: 'tools/call', tool, args: { path: { glob: `workspace/project-${i}/**` } } }));
  const leafGrants: Grant[] = REALISTIC_TOOLS.map((tool, i) => ({ method: 'tools/call', tool, args: { path: { glob: `workspace/project-${i}/src/**` } } }));
  return {
    T0,
    seed,
    did,
    rootIssuer: did(ROOT),
    subject: did(SUB),
    audience: did(GW),
    /** A root token for the agent; `extraExp` seconds past a day, so each call can differ. */
    root: (extraExp = 0) => mintToken(crypto, { issuerKey: seed(ROOT), sub: did(AGENT), aud: did(GW), grants: rootGrants, nbf: T0, exp: T0 + 86_400 + extraExp }),
    /** The agent's delegation of `parent` to the sub-agent, narrowed to the leaf grants. */
    leaf: (parent: Token, exp: number) => delegateToken(crypto, { parent, issuerKey: seed(AGENT), sub: did(SUB), grants: leafGrants, exp }),
  };
}
