/**
 * Which members' m.room.member events a device has already been sent, per
 * room, for lazy-loading (client-server-api "Lazy-loading room members": with
 * `include_redundant_members` false the server avoids sending a member again).
 *
 * Kept in memory and bounded: after a restart, on another replica or once
 * evicted the server just sends a member again, which the spec allows (a
 * redundant member is harmless; a missing one is not).
 */
export class LazyMemberCache {
  private readonly entries = new Map<string, Set<string>>();

  constructor(private readonly maxEntries = 20_000) {}

  private key(userId: string, deviceId: string, roomId: string): string {
    return `${userId}\n${deviceId}\n${roomId}`;
  }

  has(userId: string, deviceId: string, roomId: string, member: string): boolean {
    return this.entries.get(this.key(userId, deviceId, roomId))?.has(member) ?? false;
  }

  /** Records members sent; `reset` when the client was given the room's full state (it starts over). */
  add(userId: string, deviceId: string, roomId: string, members: Iterable<string>, reset = false): void {
    const key = this.key(userId, deviceId, roomId);
    let set = reset ? undefined : this.entries.get(key);
    this.entries.delete(key);
    set ??= new Set();
    for (const member of members) set.add(member);
    this.entries.set(key, set);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
  }
}
