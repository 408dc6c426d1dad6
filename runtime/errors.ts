/**
 * Every refusal in Talos is a TalosError with a stable machine-readable `code`.
 * Messages describe what was wrong and never carry key material or plaintext.
 */
export class TalosError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** An error as one line, its name and message (anything thrown that is not an Error, as text). */
export function describeError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** Bad bytes or text at a decoding boundary (base64url, base58, JSON, hex). */
export class EncodingError extends TalosError {}
/** A primitive refused its input (bad key, failed tag, low-order point). */
export class CryptoError extends TalosError {}
/** A DID, key file, DID document or prekey bundle was refused. */
export class IdentityError extends TalosError {}
/** A JSON value did not match its contract schema. */
export class SchemaError extends TalosError {
  readonly errors: readonly string[];
  constructor(code: string, message: string, errors: readonly string[] = []) {
    super(code, message);
    this.errors = errors;
  }
}
