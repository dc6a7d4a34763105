export * from './matrix-error';
export * from './json-body';
export * from './exception-filter';
export * from './rate-limiter';
export * from './user-interactive-auth';
export * from './access-token';
