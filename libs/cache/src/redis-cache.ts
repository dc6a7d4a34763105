/**
 * The cache of the cluster mode, on Redis (ioredis), shared by every replica.
 * Each operation is one atomic Redis command or script, so replicas racing
 * on one key see what a single process would: SET NX PX for setIfAbsent, and
 * INCR with PEXPIRE on first use in one Lua script for increment.
 */
import Redis from 'ioredis';
import type { Cache } from './port';
import { checkTtl } from './ttl';

export interface RedisCacheOptions {
  /** Prepended to every key (several deployments on one Redis). */
  keyPrefix?: string;
}

/** KEYS[1] counter, ARGV[1] TTL in ms. The TTL is set only by the INCR that created the key. */
const INCREMENT_SCRIPT = `
local value = redis.call('INCR', KEYS[1])
if value == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return value
`;

type RedisWithIncrement = Redis & { atriumIncrement(key: string, ttlMs: number): Promise<number> };

export class RedisCache implements Cache {
  private constructor(private readonly redis: RedisWithIncrement) {}

  /** Connects to `redis://[user:password@]host:port[/db]` (or `rediss://`) and waits until it is ready. */
  static async connect(url: string, options: RedisCacheOptions = {}): Promise<RedisCache> {
    let ready = false;
    const redis = new Redis(url, {
      lazyConnect: true,
      keyPrefix: options.keyPrefix,
      maxRetriesPerRequest: 3,
      // A first connection that fails is reported to the caller at once (and leaves no retry timer
      // behind); once connected, a lost connection is retried for as long as it takes.
      retryStrategy: (attempt) => (ready ? Math.min(attempt * 200, 2_000) : null),
    });
    redis.defineCommand('atriumIncrement', { numberOfKeys: 1, lua: INCREMENT_SCRIPT });
    // Without a listener ioredis prints reconnection errors itself; the next command reports them.
    redis.on('error', () => undefined);
    try {
      await redis.connect();
      ready = true;
    } catch (error) {
      // A failed first connection has already ended; disconnect() then would only leave a 2 s timer behind.
      if (redis.status !== 'end') redis.disconnect();
      throw error;
    }
    return new RedisCache(redis as RedisWithIncrement);
  }

  async get(key: string): Promise<string | null> {
    return this.redis.get(key);
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    if (ttlMs === undefined) await this.redis.set(key, value);
    else await this.redis.set(key, value, 'PX', checkTtl(ttlMs));
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    return (await this.redis.set(key, value, 'PX', checkTtl(ttlMs), 'NX')) === 'OK';
  }

  async delete(key: string): Promise<void> {
    await this.redis.del(key);
  }

  async increment(key: string, ttlMs: number): Promise<number> {
    return Number(await this.redis.atriumIncrement(key, checkTtl(ttlMs)));
  }

  async ttl(key: string): Promise<number> {
    // PTTL: -2 absent, -1 no expiry; the port folds both into -1.
    const remaining = await this.redis.pttl(key);
    return remaining < 0 ? -1 : remaining;
  }

  async ping(): Promise<boolean> {
    if (this.redis.status !== 'ready') return false;
    try {
      return (await this.redis.ping()) === 'PONG';
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    if (this.redis.status === 'end') return;
    try {
      await this.redis.quit();
    } catch {
      this.redis.disconnect();
    }
  }
}
