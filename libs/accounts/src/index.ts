export * from './password';
export * from './account-store';
export * from './openid-token-store';
