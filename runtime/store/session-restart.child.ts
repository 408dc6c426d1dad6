/**
 * Child process for session-sqlite.test.ts: plays the responder against a SQLite store, one
 * JSON command per stdin line, and answers on stdout only after its store has committed.
 * The parent kills it with SIGKILL between commands and starts it again.
 * `{ op: 'commits', count }` instead commits `count` handshakes (fresh EK and sid each) and
 * answers how many succeeded and which errors came out: several such children share one file.
 */
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { createCryptoProvider } from '../crypto/index.ts';
import { fromHex, fromUtf8, utf8 } from '../encoding/bytes.ts';
import { identityFromSecrets } from '../identity/identity.ts';
import { decodeEnvelope, encodeEnvelope } from '../session/envelope.ts';
import { acceptFirstMessage } from '../session/responder.ts';
import { openMessage, sealMessage } from '../session/session.ts';
import { establishedPair } from '../session/test-helpers.ts';
import { SqliteSessionStore } from './session-sqlite.ts';

const [dbPath, did, sigSeed, dhSecret, dhPublic] = process.argv.slice(2) as [string, string, string, string, string];
const crypto = createCryptoProvider();
const self = identityFromSecrets(
  crypto,
  { sigSeed: fromHex(sigSeed), dhSecret: fromHex(dhSecret) },
  { did, dhPublicKey: fromHex(dhPublic) },
);
const store = new SqliteSessionStore({ path: dbPath });

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  const cmd = JSON.parse(line) as { op: 'accept' | 'open' | 'commits'; frame: string; now: number; count: number };
  if (cmd.op === 'commits') {
    const template = establishedPair(crypto, cmd.now).bob;
    let committed = 0;
    const errors: Record<string, number> = {};
    for (let i = 0; i < cmd.count; i++) {
      try {
        await store.commitHandshake({ spkId: 1, ek: randomBytes(32) }, { ...template, sid: randomBytes(16) });
        committed++;
      } catch (err) {
        const what = `${(err as Error).name}:${(err as { code?: string }).code}`;
        errors[what] = (errors[what] ?? 0) + 1;
      }
    }
    process.stdout.write(JSON.stringify({ committed, errors, pid: process.pid }) + '\n');
    continue;
  }
  const envelope = decodeEnvelope(cmd.frame);
  let session;
  let plaintext: Uint8Array;
  if (cmd.op === 'accept') {
    ({ session, plaintext } = await acceptFirstMessage(crypto, self, envelope, store, cmd.now));
  } else {
    const loaded = await store.load(envelope.sid);
    if (!loaded) throw new Error('session not found');
    ({ session, plaintext } = openMessage(crypto, loaded, envelope, cmd.now));
    await store.save(session);
  }
  const reply = sealMessage(crypto, session, utf8(`echo:${fromUtf8(plaintext)}`));
  await store.save(reply.session);
  process.stdout.write(JSON.stringify({ frame: encodeEnvelope(reply.envelope), pid: process.pid }) + '\n');
}
