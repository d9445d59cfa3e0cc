// Size limits of guest protocol 1.0, checked on raw bytes before anything is decoded.

export const PROTOCOL_VERSION = '1.0';
/** A request line, including its LF (and the CR a guest tty may put before it). */
export const MAX_REQUEST_BYTES = 256;
/** A reply line, including its LF. */
export const MAX_REPLY_BYTES = 1024;
