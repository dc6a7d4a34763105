import type { Cache } from '@atrium/cache';

/**
 * Which members' m.room.member events a device has already been sent, per
 * room, for lazy-loading (client-server-api "Lazy-loading room members": the
 * server "MAY assume that clients will remember membership events they have
 * already been sent", and redundancy "should be minimised").
 *
 * Kept in the shared cache (Redis in the cluster, memory embedded) so that
 * consecutive syncs served by different client-api replicas agree. It is a
 * cache, not a record: when an entry has expired or was cut, the server just
 * sends those members again, which the spec allows ("it is valid for the
 * server to send redundant membership events").
 */
export class LazyMemberCache {
  constructor(
    private readonly cache: Cache,
    private readonly ttlMs = 60 * 60_000,
    /** Members remembered per (device, room); past this the set starts over. */
    private readonly maxMembers = 5_000,
  ) {}

  private key(userId: string, deviceId: string, roomId: string): string {
    return `sync:lazy-members:${userId}\n${deviceId}\n${roomId}`;
  }

  /** The members this device was sent in this room. */
  async sent(userId: string, deviceId: string, roomId: string): Promise<Set<string>> {
    const raw = await this.cache.get(this.key(userId, deviceId, roomId));
    if (!raw) return new Set();
    try {
      const parsed: unknown = JSON.parse(raw);
      return new Set(Array.isArray(parsed) ? parsed.filter((m): m is string => typeof m === 'string') : []);
    } catch {
      return new Set();
    }
  }

  /** Records members sent; `reset` when the client was given the room's full state (it starts over). */
  async record(userId: string, deviceId: string, roomId: string, members: Iterable<string>, reset = false, known?: Set<string>): Promise<void> {
    const set = reset ? new Set<string>() : new Set(known ?? (await this.sent(userId, deviceId, roomId)));
    const before = set.size;
    for (const member of members) set.add(member);
    if (!reset && set.size === before) return;
    const list = [...set];
    await this.cache.set(this.key(userId, deviceId, roomId), JSON.stringify(list.length > this.maxMembers ? list.slice(-this.maxMembers) : list), this.ttlMs);
  }
}
