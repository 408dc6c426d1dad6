import type { CryptoProvider } from '../crypto/provider.ts';
import { fromUtf8, utf8 } from '../encoding/bytes.ts';
import { toB64u } from '../encoding/base64url.ts';
import { type Envelope, encodeEnvelope, openMessage, sealClose, sealMessage, type Session } from '../session/index.ts';

/**
 * One live session used as a duplex channel: seal a plaintext into a frame, open a frame into
 * its plaintext. Thin: the ratchet, framing and every check are runtime/session's. Sealing and
 * opening are synchronous, so frames are processed strictly in the order they are handed in
 * and the session value is replaced only after a frame opened (decryption is transactional).
 */
export class SessionChannel {
  private state: Session;

  constructor(
    private readonly crypto: CryptoProvider,
    session: Session,
  ) {
    this.state = session;
  }

  get peer(): string {
    return this.state.peer;
  }
  get self(): string {
    return this.state.self;
  }
  get sid(): string {
    return toB64u(this.state.sid);
  }
  get closed(): boolean {
    return this.state.closed;
  }
  get session(): Session {
    return this.state;
  }

  seal(text: string): string {
    const { session, envelope } = sealMessage(this.crypto, this.state, utf8(text));
    const frame = encodeEnvelope(envelope);
    this.state = session;
    return frame;
  }

  sealClose(reason: string): string {
    const { session, envelope } = sealClose(this.crypto, this.state, reason);
    const frame = encodeEnvelope(envelope);
    this.state = session;
    return frame;
  }

  /** Opens one frame; returns its text, or the close reason for a close frame. */
  open(envelope: Envelope, now: number): { text?: string; closeReason?: string } {
    const opened = openMessage(this.crypto, this.state, envelope, now);
    this.state = opened.session;
    if (opened.closeReason !== undefined) return { closeReason: opened.closeReason };
    return { text: fromUtf8(opened.plaintext) };
  }
}
