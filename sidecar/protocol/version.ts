// The guest protocol's version: the first word of every reply line and what VERSION reports.
// Written here and nowhere else (test/sidecar/protocol/version.test.ts greps for strays).

export const PROTOCOL_VERSION = '1.0';

/** What every reply line starts with, before its status. */
export const REPLY_PREFIX = `${PROTOCOL_VERSION} `;
