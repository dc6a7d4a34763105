/**
 * The cache of the embedded mode: a Map in this process. Entries expire by
 * timestamp, checked when read (no timers); when the bound on entries is
 * passed, expired entries are swept and then the least recently written go.
 */
import type { Cache } from './port';
import { checkTtl } from './ttl';

export interface MemoryCacheOptions {
  /** Entries kept before the least recently written are evicted (default 100,000). */
  maxEntries?: number;
  /** The clock, in ms (tests of expiry may pass their own). */
  now?: () => number;
}

interface Entry {
  value: string;
  /** ms since epoch; undefined for no expiry. */
  expiresAt?: number;
}

const DEFAULT_MAX_ENTRIES = 100_000;

export class MemoryCache implements Cache {
  private readonly entries = new Map<string, Entry>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  private closed = false;

  constructor(options: MemoryCacheOptions = {}) {
    this.maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
    this.now = options.now ?? Date.now;
  }

  /** Entries held right now, expired ones not yet swept included. */
  get size(): number {
    return this.entries.size;
  }

  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== undefined && entry.expiresAt <= this.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  private write(key: string, entry: Entry): void {
    // Re-inserting moves the key to the end of the Map's order: the most recently written.
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size <= this.maxEntries) return;
    const now = this.now();
    for (const [k, e] of this.entries) {
      if (e.expiresAt !== undefined && e.expiresAt <= now) this.entries.delete(k);
    }
    for (const k of this.entries.keys()) {
      if (this.entries.size <= this.maxEntries) break;
      this.entries.delete(k);
    }
  }

  async get(key: string): Promise<string | null> {
    return this.live(key)?.value ?? null;
  }

  async set(key: string, value: string, ttlMs?: number): Promise<void> {
    this.write(key, { value, expiresAt: ttlMs === undefined ? undefined : this.now() + checkTtl(ttlMs) });
  }

  async setIfAbsent(key: string, value: string, ttlMs: number): Promise<boolean> {
    const ttl = checkTtl(ttlMs);
    if (this.live(key)) return false;
    this.write(key, { value, expiresAt: this.now() + ttl });
    return true;
  }

  async delete(key: string): Promise<void> {
    this.entries.delete(key);
  }

  async increment(key: string, ttlMs: number): Promise<number> {
    const ttl = checkTtl(ttlMs);
    const entry = this.live(key);
    if (!entry) {
      this.write(key, { value: '1', expiresAt: this.now() + ttl });
      return 1;
    }
    // As Redis INCR: only a base-10 integer string can be incremented.
    if (!/^-?\d+$/.test(entry.value)) throw new Error(`value of ${key} is not an integer`);
    const next = Number(entry.value) + 1;
    entry.value = String(next);
    return next;
  }

  async ttl(key: string): Promise<number> {
    const entry = this.live(key);
    if (!entry || entry.expiresAt === undefined) return -1;
    return Math.max(0, entry.expiresAt - this.now());
  }

  async ping(): Promise<boolean> {
    return !this.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
  }
}
