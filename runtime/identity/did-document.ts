import type { CryptoProvider } from '../crypto/provider.ts';
import type { DidDocument } from '../../contracts/types.gen.ts';
import { isValid } from '../../contracts/validate.ts';
import { jcs } from '../encoding/jcs.ts';
import { IdentityError } from '../errors.ts';
import { normalizeDid, publicKeyFromDid, type Did } from './did.ts';
import type { Identity } from './identity.ts';
import { isCanonicalX25519PublicKey } from './key-checks.ts';
import { decodeMultikey, encodeMultikey } from './multikey.ts';
import { DOMAINS, signObject, verifyObject } from './signing.ts';

/**
 * W3C DID documents for did:talos (DID Core 1.0), with Multikey verification methods
 * (W3C Controlled Identifiers; the form did:key now uses). The document is a pure function of
 * the DID and, when known, the X25519 identity key, exactly like did:key's: the Ed25519 key
 * is the DID's own key and serves authentication, assertion and capability relationships;
 * the X25519 key, which the DID cannot carry, is listed under keyAgreement only when supplied.
 */
export type { DidDocument };

export const DID_CONTEXT = ['https://www.w3.org/ns/did/v1', 'https://w3id.org/security/multikey/v1'] as const;

export interface ResolveOptions {
  /** IKdh.pub (32 bytes), for example from a verified prekey bundle. */
  x25519?: Uint8Array;
}

/** The DID document of `did` (did:talos or did:key; always written in did:talos form). */
export function resolveDid(did: string, options: ResolveOptions = {}): DidDocument {
  const id = normalizeDid(did);
  const edKey = id.slice('did:talos:'.length);
  const edRef = `${id}#${edKey}`;
  const doc: DidDocument = {
    '@context': [...DID_CONTEXT],
    id,
    verificationMethod: [{ id: edRef, type: 'Multikey', controller: id, publicKeyMultibase: edKey }],
    authentication: [edRef],
    assertionMethod: [edRef],
    capabilityInvocation: [edRef],
    capabilityDelegation: [edRef],
  };
  if (options.x25519 !== undefined) {
    if (!isCanonicalX25519PublicKey(options.x25519)) {
      throw new IdentityError('did_document_bad_key', 'the X25519 key is not a canonical 32-byte public key');
    }
    const xKey = encodeMultikey('x25519', options.x25519);
    const xRef = `${id}#${xKey}`;
    doc.verificationMethod = [doc.verificationMethod[0], { id: xRef, type: 'Multikey', controller: id, publicKeyMultibase: xKey }];
    doc.keyAgreement = [xRef];
  }
  return doc;
}

/** The identity's own DID document, signed with domain talos/v1/did-document. */
export function signDidDocument(crypto: CryptoProvider, identity: Identity, doc?: DidDocument): DidDocument {
  const unsigned = doc ?? resolveDid(identity.did, { x25519: identity.dh.publicKey });
  if (normalizeDid(unsigned.id) !== identity.did) {
    throw new IdentityError('did_document_mismatch', 'a DID document can only be signed by its own DID');
  }
  const { sig: _old, ...body } = unsigned;
  return signObject(crypto, identity.sig.secretKey, DOMAINS.didDocument, body) as DidDocument;
}

export interface VerifiedDidDocument {
  did: Did;
  ed25519: Uint8Array;
  x25519?: Uint8Array;
  document: DidDocument;
}

/**
 * Accepts a DID document only when it matches its schema, is exactly the document its DID and
 * key-agreement key resolve to (nothing added, nothing altered), and, unless
 * `requireSignature` is false, carries a valid talos/v1/did-document signature by the DID's key.
 * Errors: did_document_malformed, did_document_mismatch, did_document_bad_key,
 * did_document_unsigned, did_document_bad_signature.
 */
export function verifyDidDocument(
  crypto: CryptoProvider,
  value: unknown,
  options: { requireSignature?: boolean } = {},
): VerifiedDidDocument {
  if (!isValid('did-document', value)) {
    throw new IdentityError('did_document_malformed', 'the DID document does not match its schema');
  }
  const doc = value as DidDocument;
  const ed25519 = publicKeyFromDid(doc.id);
  const agreement = doc.verificationMethod[1];
  let x25519: Uint8Array | undefined;
  if (agreement) {
    try {
      x25519 = decodeMultikey('x25519', agreement.publicKeyMultibase);
    } catch (err) {
      throw new IdentityError('did_document_bad_key', 'the key-agreement method is not an X25519 multikey', { cause: err });
    }
  }
  const expected = resolveDid(doc.id, x25519 ? { x25519 } : {});
  const { sig, ...body } = doc;
  if (jcs(body) !== jcs(expected)) {
    throw new IdentityError('did_document_mismatch', 'the DID document is not the one its DID resolves to');
  }
  if (sig === undefined) {
    if (options.requireSignature ?? true) throw new IdentityError('did_document_unsigned', 'the DID document is not signed');
  } else if (!verifyObject(crypto, ed25519, DOMAINS.didDocument, doc as unknown as Record<string, unknown>)) {
    throw new IdentityError('did_document_bad_signature', 'the DID document signature does not verify');
  }
  return { did: doc.id as Did, ed25519, ...(x25519 ? { x25519 } : {}), document: doc };
}
