import { MemoryCache } from './memory-cache';
import type { Cache } from './port';
import { RedisCache } from './redis-cache';

/** The cache named by the config's `cache.url`: `memory:` (embedded mode) or `redis://…` / `rediss://…` (cluster mode). */
export async function openCache(url: string): Promise<Cache> {
  const trimmed = url.trim();
  if (trimmed === 'memory:' || trimmed === 'memory://') return new MemoryCache();
  if (/^rediss?:\/\//i.test(trimmed)) return RedisCache.connect(trimmed);
  throw new Error(`unsupported cache URL ${JSON.stringify(url)}: use memory: or redis://host:port`);
}
