// The QMP client's public surface, for the sidecar to import from one place.
export * from './errors.js';
export { MAX_QMP_MESSAGE_BYTES } from './framing.js';
export type { QmpJsonObject } from './framing.js';
export type { QmpEvent, QmpGreeting, QmpVersionTriple } from './messages.js';
export * from './client.js';
export * from './queries.js';
export { qemuPidFromSocket, type QemuPidOptions } from './pid.js';
