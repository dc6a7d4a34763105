import { cacheContract } from './contract';
import { MemoryCache } from './memory-cache';
import { openCache } from './open-cache';

// One MemoryCache is the whole store of the embedded mode: every client is the same instance.
cacheContract('MemoryCache', {
  async start() {
    const cache = new MemoryCache();
    return { connect: async () => cache, stop: () => cache.close() };
  },
});

describe('MemoryCache', () => {
  it('is what openCache gives for memory:', async () => {
    const cache = await openCache('memory:');
    expect(cache).toBeInstanceOf(MemoryCache);
    await cache.close();
    await expect(openCache('memcached://x')).rejects.toThrow(/unsupported cache URL/);
  });

  it('sweeps expired entries, then evicts the least recently written, past maxEntries', async () => {
    let now = 1_000;
    const cache = new MemoryCache({ maxEntries: 3, now: () => now });
    await cache.set('old', '1');
    await cache.set('expiring', '2', 10);
    await cache.set('middle', '3');
    now += 20;
    await cache.set('new', '4');
    // The expired entry made room: nothing live was evicted.
    expect(cache.size).toBe(3);
    expect(await cache.get('old')).toBe('1');
    await cache.set('old', '1 again');
    await cache.set('newest', '5');
    // `middle` was the least recently written.
    expect(cache.size).toBe(3);
    expect(await cache.get('middle')).toBeNull();
    expect(await cache.get('old')).toBe('1 again');
    expect(await cache.get('new')).toBe('4');
    expect(await cache.get('newest')).toBe('5');
  });

  it('expires lazily by the clock, with no timers', async () => {
    let now = 0;
    const cache = new MemoryCache({ now: () => now });
    await cache.set('k', 'v', 1_000);
    now = 999;
    expect(await cache.ttl('k')).toBe(1);
    now = 1_000;
    expect(await cache.get('k')).toBeNull();
    expect(cache.size).toBe(0);
  });

  it('answers ping false after close', async () => {
    const cache = new MemoryCache();
    await cache.close();
    expect(await cache.ping()).toBe(false);
  });
});
