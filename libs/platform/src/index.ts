export * from './tokens';
export * from './platform';
export * from './platform.module';
export * from './http-app';
export * from './run';
export * from './signing-key';
