import { existsSync, mkdirSync, realpathSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { encodeToken, mintToken } from '../../capability/index.ts';
import { resolveConfig } from '../../config/config.ts';
import { createCryptoProvider } from '../../crypto/index.ts';
import { TalosError } from '../../errors.ts';
import { generateIdentity, saveKeyFile } from '../../identity/index.ts';
import { verifierKeyString } from '../../audit/note.ts';
import { referenceServerScript } from '../../mcp/servers.ts';
import { output, UsageError, writePrivateFile, type CliCommand } from '../command.ts';

/**
 * `talos init [DIR]`: a folder that works at once. It holds three identities (the gateway; the
 * issuer the gateway trusts, who mints tokens; one agent), a talos.config.json putting the
 * MCP filesystem server on DIR/workspace behind the gateway, and a capability token letting the
 * agent read and list that workspace. Nothing is written unless every file can be.
 */
export const INIT_FILES = {
  config: 'talos.config.json',
  gatewayKey: 'gateway.key.json',
  issuerKey: 'issuer.key.json',
  agentKey: 'agent.key.json',
  agentToken: 'agent.token',
  auditVkey: 'audit.vkey',
  workspace: 'workspace',
} as const;
export const DEFAULT_INIT_PORT = 7800;
/** The gateway's name: the origin of its audit log's checkpoints. */
export const INIT_GATEWAY_NAME = 'talos.local/gateway';
/** Longest token lifetime `talos init` mints (days); longer-lived grants should be minted on purpose. */
export const MAX_INIT_TOKEN_DAYS = 365;
/** Token files are bearer-adjacent (bound to the agent's DID, but still private). */

function filesystemServerCommand(workspace: string): { command: string; args: string[] } {
  try {
    return { command: 'node', args: [referenceServerScript('server-filesystem'), workspace] };
  } catch {
    // Not installed beside talos: npx fetches it on first start.
    return { command: 'npx', args: ['-y', '@modelcontextprotocol/server-filesystem', workspace] };
  }
}

export const initCommands: CliCommand[] = [
  {
    name: 'init',
    summary: 'create a working gateway configuration, keys and an agent token in a folder',
    usage: 'talos init [DIR] [--port N] [--days N] [--force]',
    examples: ['talos init my-talos', 'talos init . --port 7900 --days 7', 'talos init my-talos --json | jq .next'],
    positionals: ['DIR?'],
    options: [
      { name: 'port', type: 'string', description: 'port the gateway listens on (127.0.0.1)', default: String(DEFAULT_INIT_PORT) },
      { name: 'days', type: 'string', description: `lifetime of the agent's token in days (1..${MAX_INIT_TOKEN_DAYS})`, default: '30' },
      { name: 'force', type: 'boolean', description: 'overwrite files a previous init wrote' },
    ],
    async run({ options, positionals }, ctx) {
      const port = Number(options.port);
      const days = Number(options.days);
      if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError('--port must be an integer 0..65535 (0: any free port)');
      if (!Number.isInteger(days) || days < 1 || days > MAX_INIT_TOKEN_DAYS) throw new UsageError(`--days must be an integer 1..${MAX_INIT_TOKEN_DAYS}`);
      const dirArg = positionals[0] ?? '.';
      const dir = resolve(ctx.cwd, dirArg);
      const at = (name: string) => join(dir, name);
      const taken = [INIT_FILES.config, INIT_FILES.gatewayKey, INIT_FILES.issuerKey, INIT_FILES.agentKey, INIT_FILES.agentToken, INIT_FILES.auditVkey].filter((f) => existsSync(at(f)));
      if (taken.length > 0 && !options.force) {
        throw new TalosError('file_exists', `${taken.map((f) => join(dirArg, f)).join(', ')} already exist: pass --force to replace them, or choose another folder`);
      }

      const crypto = createCryptoProvider();
      const gateway = generateIdentity(crypto);
      const issuer = generateIdentity(crypto);
      const agent = generateIdentity(crypto);
      mkdirSync(at(INIT_FILES.workspace), { recursive: true });
      const workspace = realpathSync(at(INIT_FILES.workspace));
      const rawConfig = {
        v: 1,
        gateway: { listen: { host: '127.0.0.1', port }, keyFile: INIT_FILES.gatewayKey, name: INIT_GATEWAY_NAME },
        trustedIssuers: [issuer.did],
        upstreams: [{ name: 'filesystem', transport: 'stdio', ...filesystemServerCommand(workspace) }],
        limits: { rate: { capacity: 60, refillPerSecond: 10 } },
        audit: { store: 'sqlite:audit.db' },
        pins: { file: 'tool-pins.json' },
      };
      // Validated exactly as `talos gateway` will read it, before anything is written.
      resolveConfig(rawConfig, { baseDir: dir, env: {}, source: INIT_FILES.config });
      const nowS = Math.floor(Date.now() / 1000);
      const token = mintToken(crypto, {
        issuerKey: issuer.sig.secretKey,
        sub: agent.did,
        aud: gateway.did,
        grants: [
          { method: 'tools/call', tool: 'read_text_file', args: { path: { glob: `${workspace}/**` } } },
          { method: 'tools/call', tool: 'list_directory', args: { path: { glob: `${workspace}/**` } } },
          { method: 'tools/call', tool: 'list_allowed_directories' },
        ],
        nbf: nowS - 60,
        exp: nowS + days * 86_400,
      });

      const created = Date.now();
      saveKeyFile(at(INIT_FILES.gatewayKey), gateway, { created });
      saveKeyFile(at(INIT_FILES.issuerKey), issuer, { created });
      saveKeyFile(at(INIT_FILES.agentKey), agent, { created });
      writePrivateFile(at(INIT_FILES.agentToken), encodeToken(token) + '\n');
      writeFileSync(at(INIT_FILES.auditVkey), verifierKeyString(crypto, INIT_GATEWAY_NAME, gateway.sig.publicKey) + '\n');
      writeFileSync(at(INIT_FILES.config), JSON.stringify(rawConfig, null, 2) + '\n');
      const readme = join(workspace, 'hello.md');
      if (!existsSync(readme)) writeFileSync(readme, '# Hello from Talos\nThe agent may read and list this folder, nothing else.\n');

      const fromCwd = relative(ctx.cwd, dir) || '.';
      const rel = fromCwd.startsWith('..') ? dir : fromCwd;
      const file = (f: string) => join(rel, f);
      const width = Math.max(...Object.values(INIT_FILES).map((f) => file(f).length)) + 2;
      const gatewayCmd = `talos gateway -c ${file(INIT_FILES.config)}`;
      const connectArgs = ['connect', '--gateway', `ws://127.0.0.1:${port}`, '--key', join(dir, INIT_FILES.agentKey), '--token', join(dir, INIT_FILES.agentToken), '--gateway-did', gateway.did];
      const verifyCmd = `talos audit verify --store sqlite:${file('audit.db')} --vkey "$(cat ${file(INIT_FILES.auditVkey)})"`;
      const mcpClientEntry = { mcpServers: { 'talos-filesystem': { command: 'talos', args: connectArgs } } };
      output(
        ctx,
        {
          dir,
          files: Object.fromEntries(Object.entries(INIT_FILES).map(([k, f]) => [k, join(dir, f)])),
          gateway: gateway.did,
          issuer: issuer.did,
          agent: agent.did,
          token: { id: token.id, exp: token.exp },
          next: { gateway: gatewayCmd, connect: `talos ${connectArgs.join(' ')}`, mcpClient: mcpClientEntry, verify: verifyCmd },
        },
        () =>
          [
            `created in ${rel}/ (key files and the token are private: mode 0600)`,
            `  ${file(INIT_FILES.config).padEnd(width)} gateway on 127.0.0.1:${port}, MCP filesystem server on ${file(INIT_FILES.workspace)}/`,
            `  ${file(INIT_FILES.gatewayKey).padEnd(width)} gateway  ${gateway.did}`,
            `  ${file(INIT_FILES.issuerKey).padEnd(width)} issuer   ${issuer.did} (trusted by the gateway; mints tokens)`,
            `  ${file(INIT_FILES.agentKey).padEnd(width)} agent    ${agent.did}`,
            `  ${file(INIT_FILES.agentToken).padEnd(width)} the agent may read and list ${file(INIT_FILES.workspace)}/ for ${days} days`,
            '',
            'next:',
            `  1. start the gateway:   ${gatewayCmd}`,
            `  2. point an MCP client at it through an encrypted session, e.g. in its config:`,
            `       ${JSON.stringify(mcpClientEntry)}`,
            `     or by hand:          talos ${connectArgs.join(' ')}`,
            `  3. check the audit log: ${verifyCmd}`,
            `  4. mint more tokens:    talos token mint --help   (sign with --key ${file(INIT_FILES.issuerKey)})`,
          ].join('\n'),
      );
      return 0;
    },
  },
];
