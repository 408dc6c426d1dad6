/**
 * Every golden vector file, by file name, with the generator that derives it from fixed seeds.
 * Each protocol domain contributes one generator; add yours here.
 */
import { identityVectors } from '../../runtime/identity/golden.ts';
import { sessionVectors } from '../../runtime/session/golden.ts';
import { capabilityVectors } from '../../runtime/capability/vectors.ts';
import { secretsVectors } from '../../runtime/secrets/golden.ts';
import { auditVectors } from '../../runtime/audit/golden.ts';

type Generator = () => unknown;

const generators: Record<string, Generator> = {
  'audit.json': auditVectors,
  'identity.json': identityVectors,
  'sessions.json': sessionVectors,
  'capability.json': () => capabilityVectors(),
  'secrets.json': secretsVectors,
};

export function goldenVectorFiles(): Record<string, unknown> {
  return Object.fromEntries(Object.entries(generators).map(([file, generate]) => [file, generate()]));
}

export function serializeVectors(content: unknown): string {
  return JSON.stringify(content, null, 2) + '\n';
}
