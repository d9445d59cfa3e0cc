// Size limits of the guest protocol (PROTOCOL_VERSION, version.ts), checked on raw bytes before
// anything is decoded.

/** A request line, including its LF (and the CR a guest tty may put before it). */
export const MAX_REQUEST_BYTES = 256;
/** A reply line, including its LF. */
export const MAX_REPLY_BYTES = 1024;
