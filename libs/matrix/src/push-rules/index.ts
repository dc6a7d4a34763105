export * from './types';
export * from './default-rules';
export * from './evaluate';
export * from './ruleset';
