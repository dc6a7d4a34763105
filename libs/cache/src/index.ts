export * from './port';
export { MemoryCache, type MemoryCacheOptions } from './memory-cache';
export { RedisCache, type RedisCacheOptions } from './redis-cache';
export { openCache } from './open-cache';
