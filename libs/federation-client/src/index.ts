export * from './api';
export * from './edus';
