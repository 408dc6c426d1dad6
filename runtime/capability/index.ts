/** Capability tokens and the authorization engine (PROTOCOL.md section 7). */
export { CapabilityError, REFUSAL_ORDER, type RefusalCode } from './errors.ts';
export { canonicalizePath, MAX_PATH_LENGTH } from './path.ts';
export { compileGlob, matchPath, globContains, MAX_GLOB_LENGTH, MAX_GLOBSTARS, type Containment } from './glob.ts';
export {
  grantContains,
  constraintContains,
  grantsAttenuate,
  jsonEqual,
  MAX_GRANTS,
  MAX_ARGS_PER_GRANT,
  MAX_IN_VALUES,
  type AccessRequest,
  type Constraint,
  type Grant,
} from './grant.ts';
export {
  CAPABILITY_META_KEY,
  MAX_CHAIN_DEPTH,
  MAX_COMPACT_TOKEN_LENGTH,
  decodeToken,
  delegateToken,
  encodeToken,
  mintToken,
  parseTokenText,
  tokenChain,
  type DelegateOptions,
  type MintOptions,
  type Token,
} from './token.ts';
export { verifyChainStatic, signatureVerdict, SIGNATURES_NOT_REACHED, type SignatureVerdict } from './verify.ts';
export { RedisRevocationSource, DEFAULT_REVOCATIONS_KEY, type RedisRevocationOptions } from './redis-revocations.ts';
export { parseGrant, formatGrant, parseDuration } from './syntax.ts';
export { takeCapability, attachCapability } from './meta.ts';
export { CapabilityChecker, DEFAULT_CACHE_SIZE, type CheckResult, type CheckerOptions, type CheckerStats } from './checker.ts';
export {
  MemoryRevocationSource,
  mintRevocation,
  verifyRevocation,
  type Revocation,
  type RevocationSource,
} from './revocation.ts';
