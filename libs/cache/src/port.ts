/**
 * The cache port: memory (embedded) or Redis (cluster). Values are strings
 * (callers serialise). Used for remote server keys, rate-limit counters, and
 * short-lived state shared by replicas; nothing here is the source of truth.
 */
export interface Cache {
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlMs?: number): Promise<void>;
  /** Sets only if absent; returns true if it set (a lock or a first-seen marker). */
  setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean>;
  delete(key: string): Promise<void>;
  /** Increments an integer counter, creating it with the TTL on first use; returns the new value. */
  increment(key: string, ttlMs: number): Promise<number>;
  /** Remaining time to live in ms, or -1 if none / absent. */
  ttl(key: string): Promise<number>;
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
