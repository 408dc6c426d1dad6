import t from 'tap';
import { providers } from '../crypto/index.ts';
import { fromB64 } from '../encoding/base64url.ts';
import { toHex } from '../encoding/bytes.ts';
import { parseNote, signNote, verifyNote, ed25519NoteVerifier, parseVerifierKey, verifierKeyString } from './note.ts';
import { checkpointBody, openCheckpoint, parseCheckpointBody, signCheckpoint } from './checkpoint.ts';
import { cosignatureLine, verifyCosignature } from './cosignature.ts';

/*
 * Known answers:
 * - golang.org/x/mod/sumdb/note (note.go doc example and note_test.go): the PeterNeumann key
 *   and the signed note below. Ed25519 is deterministic, so signing must reproduce it byte for byte.
 * - C2SP tlog-cosignature, Ed25519 type 0x04: the witness key remora.n621.de+da77ade7+… (from
 *   transparency-dev/formats note_cosigv1_test.go) and a real cosigned checkpoint of the
 *   arche2025h1.staging.ct.transparency.dev log, as quoted in a public checkpoint test suite.
 */
const PETER_SKEY = 'PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz';
const PETER_VKEY = 'PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW';
const PETER_TEXT = "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_NOTE = PETER_TEXT + '\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n';

const REMORA_NAME = 'remora.n621.de';
const REMORA_KEY_B64 = 'BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2';
const ARCHE_NOTE = `arche2025h1.staging.ct.transparency.dev
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

\u2014 arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
\u2014 arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwhUkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
\u2014 transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==
\u2014 witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==
\u2014 remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCIobWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
\u2014 witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvVr+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==
`;

for (const crypto of providers()) {
  t.test(`signed-note known answers (${crypto.name})`, async (t) => {
    const seed = fromB64(PETER_SKEY.split('+').slice(4).join('+')).slice(1);
    t.equal(signNote(crypto, PETER_TEXT, 'PeterNeumann', seed), PETER_NOTE, 'reproduces the Go signed note byte for byte');
    const { name, publicKey } = parseVerifierKey(crypto, PETER_VKEY);
    t.equal(verifierKeyString(crypto, name, publicKey), PETER_VKEY, 'verifier key string round-trips');
    const v = ed25519NoteVerifier(crypto, name, publicKey);
    t.equal(verifyNote(PETER_NOTE, [v]).text, PETER_TEXT);
    t.throws(() => verifyNote(PETER_NOTE.replace('cryptography', 'cryptographY'), [v]), { code: 'bad_signature' });
    t.throws(() => verifyNote(PETER_NOTE, [ed25519NoteVerifier(crypto, 'Other', publicKey)]), { code: 'unknown_key' });
    t.throws(() => parseVerifierKey(crypto, PETER_VKEY.replace('c74f20a3', 'c74f20a4')), { code: 'bad_key' });
  });

  t.test(`tlog-cosignature known answer (${crypto.name})`, async (t) => {
    const key = fromB64(REMORA_KEY_B64);
    t.equal(key[0], 0x04, 'a type 0x04 verifier key');
    const pub = key.slice(1);
    const got = verifyCosignature(crypto, ARCHE_NOTE, REMORA_NAME, pub);
    t.ok(got, 'real cosignature verifies');
    t.equal(got!.time, 0x6a122120, 'timestamp decoded from the first 8 bytes');
    t.throws(() => verifyCosignature(crypto, ARCHE_NOTE.replace('1432088532', '1432088533'), REMORA_NAME, pub), { code: 'bad_signature' });
    t.equal(verifyCosignature(crypto, ARCHE_NOTE, 'someone.else', pub), null, 'absent witness');
  });

  t.test(`checkpoints and cosignatures round trip (${crypto.name})`, async (t) => {
    const logSeed = new Uint8Array(32).fill(1);
    const logPub = crypto.ed25519PublicKey(logSeed);
    const root = crypto.sha256(new Uint8Array([1]));
    const cp = signCheckpoint(crypto, { origin: 'talos.example/log', seed: logSeed }, { size: 12, root });
    t.equal(cp.note.split('\n\n')[0] + '\n', `talos.example/log\n12\n${Buffer.from(root).toString('base64')}\n`);
    t.match(cp.note, /\n\n\u2014 talos\.example\/log [A-Za-z0-9+/]{91}=\n$/);
    const opened = openCheckpoint(crypto, cp.note, 'talos.example/log', logPub);
    t.equal(opened.size, 12);
    t.equal(toHex(opened.root), toHex(root));
    t.throws(() => openCheckpoint(crypto, cp.note, 'other.example/log', logPub), { code: 'unknown_key' });
    t.throws(() => openCheckpoint(crypto, cp.note.replace('\n12\n', '\n13\n'), 'talos.example/log', logPub), { code: 'bad_signature' });
    const wSeed = new Uint8Array(32).fill(2);
    const wPub = crypto.ed25519PublicKey(wSeed);
    const text = checkpointBody({ origin: 'talos.example/log', size: 12, root });
    const line = cosignatureLine(crypto, { name: 'witness.example/w1', seed: wSeed }, text, 1700000000);
    const cosigned = cp.note + line;
    t.same(verifyCosignature(crypto, cosigned, 'witness.example/w1', wPub), { name: 'witness.example/w1', time: 1700000000 });
    t.equal(openCheckpoint(crypto, cosigned, 'talos.example/log', logPub).size, 12, 'log signature still verifies beside the cosignature');
  });
}

t.test('strict parsing', async (t) => {
  for (const bad of ['a\n12\nAA==\n', 'o\n012\n' + Buffer.alloc(32).toString('base64') + '\n', 'o\n1\n' + Buffer.alloc(31).toString('base64') + '\n', 'o\n1\n' + Buffer.alloc(32).toString('base64') + '\next\n', '\n1\n' + Buffer.alloc(32).toString('base64') + '\n', 'o\n9007199254740992\n' + Buffer.alloc(32).toString('base64') + '\n']) {
    t.throws(() => parseCheckpointBody(bad), { code: 'bad_checkpoint' }, JSON.stringify(bad));
  }
  t.throws(() => parseNote('text\n\n- name AAAAAAA=\n'), { code: 'bad_note' }, 'hyphen instead of em dash');
  t.throws(() => parseNote('text\n\n\u2014 name AAAAAAA=\n\u2014 x'), { code: 'bad_note' }, 'no final newline');
  t.throws(() => parseNote('text\n'), { code: 'bad_note' }, 'no signatures');
  t.throws(() => parseNote('te\txt\n\n\u2014 name AAAAAAA=\n'), { code: 'bad_note' }, 'control character');
  t.throws(() => parseNote('text\n\n' + '\u2014 n AAAAAAA=\n'.repeat(33)), { code: 'bad_note' }, 'too many signatures');
  t.equal(parseNote('a\n\nb\n\n\u2014 n AAAAAAA=\n').text, 'a\n\nb\n', 'the last blank line separates the signatures');
});
