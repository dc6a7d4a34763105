// Launchers for real servers used by tests (nats-server, redis-server, FerretDB, OTLP receiver, Synapse),
// and the process helpers they share (also used by the end-to-end support code).
export * from './ferretdb';
export * from './ferretdb-suite';
export * from './otlp-receiver';
export * from './nats';
export * from './process';
export * from './redis';
export * from './test-ca';
export * from './https-json';
export * from './synapse';
