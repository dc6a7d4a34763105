// Public surface of @atrium/matrix: pure protocol code, no I/O.
export * from './room-versions';
export * from './events/pdu';
export * from './event-auth';
export * from './state-res';
export * from './canonical-json';
export * from './base64';
export * from './identifiers';
export * from './signing';
export * from './redaction';
export * from './events/event-hashes';
export * from './events/event-signing';
export * from './events/build-pdu';
export * from './events/pdu-format';
export * from './filters';
export * from './push-rules';
export * from './federation';
export * from './media';
