// Launchers for real servers used by tests (nats-server, redis-server, FerretDB, OTLP receiver).
export * from './ferretdb';
export * from './otlp-receiver';
export * from './nats';
export * from './redis';
