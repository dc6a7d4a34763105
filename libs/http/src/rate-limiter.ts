import type { Cache } from '@atrium/cache';
import { Errors } from './matrix-error';

export interface RateLimit {
  /** Sustained requests per second. */
  per_second: number;
  /** Requests allowed at once before the rate applies. */
  burst: number;
}

/**
 * Fixed-window limiter over the cache port, so every replica of a service
 * counts against the same limit in cluster mode (Redis) and the embedded mode
 * needs nothing (memory). A window lasts burst / per_second seconds and admits
 * `burst` requests: the same long-run rate as a token bucket, with one atomic
 * increment per request instead of a read-modify-write.
 * Spec: client-server-api "Rate limiting" (M_LIMIT_EXCEEDED, retry_after_ms, Retry-After).
 */
export class RateLimiter {
  constructor(
    private readonly cache: Cache,
    private readonly enabled: boolean,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one request under `key`; throws M_LIMIT_EXCEEDED (429) when over the limit. */
  async check(bucket: string, key: string, limit: RateLimit): Promise<void> {
    if (!this.enabled || limit.per_second <= 0) return;
    const windowMs = Math.max(1, Math.round((limit.burst / limit.per_second) * 1000));
    const now = this.now();
    const window = Math.floor(now / windowMs);
    const count = await this.cache.increment(`ratelimit:${bucket}:${key}:${window}`, windowMs);
    if (count > limit.burst) {
      throw Errors.limitExceeded((window + 1) * windowMs - now);
    }
  }
}
