import type { RatchetState } from '../../runtime/session/ratchet.ts';
import type { SecretScanner } from '../secrets-scan.ts';

/**
 * Registers every secret a Double Ratchet state holds with the leak scanner: root key, both
 * chain keys, the ratchet DH secret and the message keys kept for skipped messages. Called
 * with each new state, by agents and the gateway alike (keys already known cost a lookup).
 * Message keys still to come are not derived here: each comes from a chain key registered
 * with the state before it.
 */
export function noteRatchetKeys(scanner: SecretScanner, owner: string, r: RatchetState): void {
  scanner.key(r.rk, `${owner} root key`);
  if (r.cks) scanner.key(r.cks, `${owner} sending chain key`);
  if (r.ckr) scanner.key(r.ckr, `${owner} receiving chain key`);
  scanner.key(r.dhsSecret, `${owner} ratchet secret`);
  for (const k of r.skipped) scanner.key(k.mk, `${owner} skipped message key`);
}
