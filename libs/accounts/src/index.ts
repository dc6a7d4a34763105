export * from './password';
export * from './account-store';
