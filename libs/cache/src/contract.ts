/**
 * The behaviour every Cache adapter must show (port.ts), as Jest tests. Each
 * adapter's spec calls `cacheContract` with a way to reach one store;
 * `connect()` returns a client of it, standing for one replica.
 */
import type { Cache } from './port';

export interface CacheWorld {
  /** A client of the shared store (a separate connection where the adapter has connections). */
  connect(): Promise<Cache>;
  /** Closes the clients and the store. */
  stop(): Promise<void>;
}

export interface CacheContractOptions {
  /** Called once before the suite. */
  start(): Promise<CacheWorld>;
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export function cacheContract(adapter: string, options: CacheContractOptions): void {
  describe(`Cache contract: ${adapter}`, () => {
    jest.setTimeout(20_000);
    let world: CacheWorld;
    let cache: Cache;
    let other: Cache;
    let serial = 0;
    let key: (name: string) => string;

    beforeAll(async () => {
      world = await options.start();
      cache = await world.connect();
      other = await world.connect();
    });
    afterAll(async () => {
      await world?.stop();
    });
    beforeEach(() => {
      const tag = `t${++serial}${Math.random().toString(36).slice(2, 7)}`;
      key = (name) => `${tag}:${name}`;
    });

    it('gets what was set, overwrites, and gives null for an absent key', async () => {
      expect(await cache.get(key('a'))).toBeNull();
      await cache.set(key('a'), 'one');
      expect(await cache.get(key('a'))).toBe('one');
      expect(await other.get(key('a'))).toBe('one');
      await other.set(key('a'), 'two');
      expect(await cache.get(key('a'))).toBe('two');
      await cache.set(key('empty'), '');
      expect(await cache.get(key('empty'))).toBe('');
    });

    it('expires a value after its TTL and reports the time left', async () => {
      await cache.set(key('short'), 'v', 150);
      await cache.set(key('forever'), 'v');
      const left = await cache.ttl(key('short'));
      expect(left).toBeGreaterThan(0);
      expect(left).toBeLessThanOrEqual(150);
      expect(await cache.ttl(key('forever'))).toBe(-1);
      expect(await cache.ttl(key('absent'))).toBe(-1);
      expect(await cache.get(key('short'))).toBe('v');
      await sleep(250);
      expect(await cache.get(key('short'))).toBeNull();
      expect(await cache.ttl(key('short'))).toBe(-1);
      expect(await cache.get(key('forever'))).toBe('v');
    });

    it('drops the TTL when a key is set again without one', async () => {
      await cache.set(key('k'), 'a', 100);
      await cache.set(key('k'), 'b');
      expect(await cache.ttl(key('k'))).toBe(-1);
      await sleep(150);
      expect(await cache.get(key('k'))).toBe('b');
    });

    it('lets exactly one of 20 concurrent setIfAbsent calls win', async () => {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? cache : other).setIfAbsent(key('lock'), `owner${i}`, 5_000)));
      expect(results.filter(Boolean)).toHaveLength(1);
      const winner = results.indexOf(true);
      expect(await cache.get(key('lock'))).toBe(`owner${winner}`);
      const left = await cache.ttl(key('lock'));
      expect(left).toBeGreaterThan(4_000);
      expect(left).toBeLessThanOrEqual(5_000);
    });

    it('lets setIfAbsent win again once the holder expired or was deleted', async () => {
      expect(await cache.setIfAbsent(key('lock'), 'first', 100)).toBe(true);
      expect(await other.setIfAbsent(key('lock'), 'second', 100)).toBe(false);
      await sleep(180);
      expect(await other.setIfAbsent(key('lock'), 'second', 5_000)).toBe(true);
      expect(await cache.get(key('lock'))).toBe('second');
      await cache.delete(key('lock'));
      expect(await cache.setIfAbsent(key('lock'), 'third', 5_000)).toBe(true);
    });

    it('increments a counter, setting the TTL on first use only', async () => {
      expect(await cache.increment(key('n'), 300)).toBe(1);
      const first = await cache.ttl(key('n'));
      expect(first).toBeGreaterThan(0);
      expect(first).toBeLessThanOrEqual(300);
      await sleep(120);
      expect(await other.increment(key('n'), 300)).toBe(2);
      expect(await cache.increment(key('n'), 300)).toBe(3);
      // The window did not restart with the later increments.
      expect(await cache.ttl(key('n'))).toBeLessThanOrEqual(first - 100);
      expect(await cache.get(key('n'))).toBe('3');
      await sleep(250);
      expect(await cache.get(key('n'))).toBeNull();
      expect(await cache.increment(key('n'), 300)).toBe(1);
    });

    it('counts every one of 40 concurrent increments once', async () => {
      const values = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? cache : other).increment(key('c'), 5_000)));
      expect([...values].sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
      expect(await cache.get(key('c'))).toBe('40');
    });

    it('refuses to increment a value that is not an integer', async () => {
      await cache.set(key('text'), 'hello');
      await expect(cache.increment(key('text'), 1_000)).rejects.toThrow();
      expect(await cache.get(key('text'))).toBe('hello');
    });

    it('deletes a key, and deleting an absent key is fine', async () => {
      await cache.set(key('d'), 'v', 5_000);
      await other.delete(key('d'));
      expect(await cache.get(key('d'))).toBeNull();
      expect(await cache.ttl(key('d'))).toBe(-1);
      await expect(cache.delete(key('never'))).resolves.toBeUndefined();
    });

    it('rejects a TTL that is not a positive number', async () => {
      await expect(cache.set(key('x'), 'v', 0)).rejects.toThrow(RangeError);
      await expect(cache.setIfAbsent(key('x'), 'v', -5)).rejects.toThrow(RangeError);
      await expect(cache.increment(key('x'), Number.NaN)).rejects.toThrow(RangeError);
      expect(await cache.get(key('x'))).toBeNull();
    });

    it('answers ping', async () => {
      expect(await cache.ping()).toBe(true);
    });
  });
}
