import { resolve } from 'node:path';
import { existsSync } from 'node:fs';
import { createCryptoProvider } from '../../crypto/index.ts';
import { TalosError } from '../../errors.ts';
import { generateIdentity, loadKeyFile, saveKeyFile, signDidDocument } from '../../identity/index.ts';
import { optionalString, output, requireString, type CliCommand } from '../command.ts';

/** `talos identity new|show`: agent identities as key files and their DID documents. */
export const identityCommands: CliCommand[] = [
  {
    name: 'identity new',
    summary: 'create a fresh identity; print its DID and signed DID document',
    usage: 'talos identity new [--out FILE] [--force]',
    examples: ['talos identity new', 'talos identity new --out agent.key.json', 'talos identity new --json | jq .did'],
    options: [
      { name: 'out', short: 'o', type: 'string', description: 'write the key file here (mode 0600)' },
      { name: 'force', type: 'boolean', description: 'overwrite an existing key file' },
    ],
    async run({ options }, ctx) {
      const crypto = createCryptoProvider();
      const identity = generateIdentity(crypto);
      const out = optionalString(options, 'out');
      if (out) {
        const path = resolve(ctx.cwd, out);
        if (existsSync(path) && !options.force) {
          throw new TalosError('file_exists', `${out} exists; pass --force to overwrite it`);
        }
        saveKeyFile(path, identity, { created: Date.now() });
      }
      const document = signDidDocument(crypto, identity);
      output(ctx, { did: identity.did, document, ...(out ? { keyFile: out } : {}) }, () =>
        [
          `did: ${identity.did}`,
          ...(out ? [`key file: ${out} (keep it secret)`] : ['(not saved: pass --out FILE to keep the keys)']),
          '',
          JSON.stringify(document, null, 2),
        ].join('\n'),
      );
      return 0;
    },
  },
  {
    name: 'identity show',
    summary: "print a key file's DID and signed DID document (never its secrets)",
    usage: 'talos identity show --key FILE',
    examples: ['talos identity show --key agent.key.json'],
    options: [{ name: 'key', short: 'k', type: 'string', description: 'the key file' }],
    async run({ options }, ctx) {
      const crypto = createCryptoProvider();
      const identity = loadKeyFile(crypto, resolve(ctx.cwd, requireString(options, 'key')));
      const document = signDidDocument(crypto, identity);
      output(ctx, { did: identity.did, document }, () => `did: ${identity.did}\n\n${JSON.stringify(document, null, 2)}`);
      return 0;
    },
  },
];
