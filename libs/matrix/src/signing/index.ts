/**
 * Ed25519 keys, signing JSON and checking signatures (content/appendices.md
 * "Signing JSON"), and server key objects (server-server-api.md "Server keys").
 */
export * from './keys';
export * from './sign-json';
export * from './server-keys';
