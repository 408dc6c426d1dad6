import { TalosError } from '../errors.ts';

/**
 * The refusal codes of PROTOCOL.md section 7, in the order the checks run: the first check
 * that fails names the refusal. `grant_escalation` and `grant_unknown` share one step.
 */
export const REFUSAL_ORDER = [
  'malformed',
  'chain_too_deep',
  'bad_signature',
  'delegation_issuer',
  'delegation_audience',
  'delegation_nbf',
  'delegation_exp',
  'grant_escalation',
  'grant_unknown',
  'untrusted_root',
  'wrong_subject',
  'wrong_audience',
  'not_yet_valid',
  'expired',
  'revoked',
  'no_matching_grant',
  'arg_violation',
] as const;

export type RefusalCode = (typeof REFUSAL_ORDER)[number];

/**
 * A capability refusal raised outside the checker's hot path (minting, delegating, parsing a
 * token or a revocation). The checker itself returns refusals as values, never throws.
 */
export class CapabilityError extends TalosError {
  readonly arg: string | undefined;
  constructor(code: RefusalCode | 'bad_glob' | 'bad_path' | 'bad_revocation' | 'bad_duration' | 'bad_grant_syntax', message: string, arg?: string) {
    super(code, message);
    this.arg = arg;
  }
}
