// Public surface of @atrium/matrix: pure protocol code, no I/O.
export * from './room-versions';
export * from './events/pdu';
export * from './event-auth';
export * from './state-res';
export * from './canonical-json';
export * from './base64';
