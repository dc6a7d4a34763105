export * from './telemetry';
export * from './logger';
export * from './metrics';
export * from './spans';
export * from './traced-bus';
export * from './http';
