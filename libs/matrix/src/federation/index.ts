/** Server-server request authentication (server-server-api.md "Authentication"). */
export * from './x-matrix';
export * from './membership';
export * from './server-acl';
export * from './policy-server';
