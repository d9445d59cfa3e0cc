// Splits the bytes a guest writes to the vhostmd port into requests, as vhostmd 1.2's host side
// (vhostmd/virtio.c vio_check_request) judges them: exactly `GET /metrics/XML\n\n` or
// `GET /metrics/XML\r\n\r\n` is a request for the metrics document; anything else that holds a
// blank line (`\n\n` or `\r\n\r\n`), or that fills the 512-byte buffer (511 bytes and its NUL), is
// an invalid request. Fed bytes, never a socket; memory is bounded by those 511 bytes.
//
// Two deliberate differences from vhostmd, both so that the verdict depends only on the bytes and
// never on how the reads split them: vhostmd checks once per read, so two requests that arrive in
// one read are one invalid request there, and it stops a request at a NUL byte (strcmp on its C
// string). Here every byte is judged as it comes, and a NUL is an ordinary byte that makes the
// request invalid.

/** vhostmd's request buffer holds this many bytes before its terminating NUL. */
export const MAX_VHOSTMD_REQUEST_BYTES = 511;

export const VHOSTMD_REQUESTS = ['GET /metrics/XML\n\n', 'GET /metrics/XML\r\n\r\n'] as const;

export type VhostmdRequest =
  | { readonly kind: 'get' }
  /** `blank line`: ended by a blank line without being a request; `full`: 511 bytes and no end. */
  | { readonly kind: 'invalid'; readonly reason: 'blank line' | 'full' };

const LF = 0x0a;
const CR = 0x0d;
const REQUESTS = VHOSTMD_REQUESTS.map((text) => Buffer.from(text, 'latin1'));
const LONGEST_REQUEST = Math.max(...REQUESTS.map((request) => request.length));

export class VhostmdRequestDecoder {
  readonly #pending = Buffer.alloc(MAX_VHOSTMD_REQUEST_BYTES);
  #length = 0;

  /** Bytes held for an unfinished request: never more than MAX_VHOSTMD_REQUEST_BYTES - 1. */
  get bufferedBytes(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): VhostmdRequest[] {
    const requests: VhostmdRequest[] = [];
    for (const byte of chunk) {
      this.#pending[this.#length] = byte;
      this.#length += 1;
      const verdict = this.#judge(byte);
      if (verdict !== undefined) {
        requests.push(verdict);
        this.#length = 0;
      }
    }
    return requests;
  }

  /**
   * The caller dropped these bytes (the guest's flood budget): the request they cut is gone with
   * what is buffered of it. What follows is judged afresh; the tail of a cut request then ends as
   * an invalid one, which is still one reply for the one request the guest sent.
   */
  skip(bytes: Uint8Array): void {
    if (bytes.length > 0) this.reset();
  }

  /** Forgets a partial request: the guest closed the port, and whoever wrote it is gone. */
  reset(): void {
    this.#length = 0;
  }

  #judge(last: number): VhostmdRequest | undefined {
    if (last !== LF) return this.#length === MAX_VHOSTMD_REQUEST_BYTES ? { kind: 'invalid', reason: 'full' } : undefined;
    const held = this.#pending.subarray(0, this.#length);
    if (this.#length <= LONGEST_REQUEST && REQUESTS.some((request) => request.equals(held))) return { kind: 'get' };
    if (this.#endsWithBlankLine()) return { kind: 'invalid', reason: 'blank line' };
    return this.#length === MAX_VHOSTMD_REQUEST_BYTES ? { kind: 'invalid', reason: 'full' } : undefined;
  }

  /** `\n\n` or `\r\n\r\n` at the end: judged at every LF, so a blank line anywhere ends a request. */
  #endsWithBlankLine(): boolean {
    const at = (back: number): number | undefined => (this.#length >= back ? this.#pending[this.#length - back] : undefined);
    return at(2) === LF || (at(2) === CR && at(3) === LF && at(4) === CR);
  }
}
