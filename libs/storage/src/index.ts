export * from './port';
export * from './sqlite-store';
export * from './mongo-store';
export * from './open-document-store';
export * from './shared-per-store';
