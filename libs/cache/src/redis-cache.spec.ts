import { startRedis, type RedisServer } from '../../../tools/test-servers/redis';
import { cacheContract } from './contract';
import { openCache } from './open-cache';
import { RedisCache } from './redis-cache';

// A real redis-server per suite; a missing binary fails the suite with the install command.
cacheContract('RedisCache', {
  async start() {
    const server = await startRedis();
    const clients: RedisCache[] = [];
    return {
      async connect() {
        const client = await RedisCache.connect(server.url);
        clients.push(client);
        return client;
      },
      async stop() {
        await Promise.all(clients.map((c) => c.close()));
        await server.stop();
      },
    };
  },
});

describe('RedisCache', () => {
  let server: RedisServer;
  beforeAll(async () => {
    server = await startRedis();
  });
  afterAll(async () => {
    await server?.stop();
  });

  it('fails, naming the install command, when redis-server is missing', async () => {
    const saved = process.env.ATRIUM_REDIS_BIN;
    process.env.ATRIUM_REDIS_BIN = '/nonexistent/redis-server';
    try {
      await expect(startRedis()).rejects.toThrow('apt-get install nats-server redis-server');
    } finally {
      if (saved === undefined) delete process.env.ATRIUM_REDIS_BIN;
      else process.env.ATRIUM_REDIS_BIN = saved;
    }
  });

  it('is what openCache gives for redis://, and answers ping false after close', async () => {
    const cache = await openCache(server.url);
    expect(cache).toBeInstanceOf(RedisCache);
    expect(await cache.ping()).toBe(true);
    await cache.close();
    expect(await cache.ping()).toBe(false);
  });

  it('keeps deployments apart with a key prefix', async () => {
    const a = await RedisCache.connect(server.url, { keyPrefix: 'a:' });
    const b = await RedisCache.connect(server.url, { keyPrefix: 'b:' });
    await a.set('k', 'from a');
    expect(await b.get('k')).toBeNull();
    expect(await b.increment('n', 1_000)).toBe(1);
    expect(await a.increment('n', 1_000)).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });

  it('fails to connect to a port where nothing listens', async () => {
    const stopped = await startRedis();
    const url = stopped.url;
    await stopped.stop();
    await expect(RedisCache.connect(url)).rejects.toThrow();
  });
});
