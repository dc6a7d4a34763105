export * from './api';
export * from './edus';
export * from './ip-ranges';
export * from './transport';
export * from './resolver';
export * from './client';
export * from './key-ring';
export * from './federation-client.module';
