import { Inject, Injectable, Optional } from '@nestjs/common';
import { FEDERATION_CLIENT, type FederationClient } from '@atrium/federation-client';
import type { JsonObject } from '@atrium/matrix';
import type { RoomSummary } from '../rooms/rooms.service';
import type { ChildEvent } from './hierarchy';

/** A room as another server describes it in GET /_matrix/federation/v1/hierarchy. */
export interface RemoteRoom {
  summary: RoomSummary;
  /** Its m.space.child events (stripped state with origin_server_ts). */
  children: ChildEvent[];
}

/** "Responses to this endpoint should be cached for a period of time" (space_hierarchy.yaml, federation). */
const CACHE_MS = 5 * 60_000;
const MAX_CACHED = 1000;
/** Servers tried per room (each `via` may be dead). */
const MAX_SERVERS = 3;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A summary object from another server, kept only if it has the required fields of room_summary.yaml. */
function toRemoteRoom(value: unknown): RemoteRoom | undefined {
  if (!isRecord(value)) return undefined;
  const { children_state: childrenState, ...summary } = value;
  if (typeof summary['room_id'] !== 'string' || typeof summary['num_joined_members'] !== 'number') return undefined;
  if (typeof summary['world_readable'] !== 'boolean' || typeof summary['guest_can_join'] !== 'boolean') return undefined;
  const children: ChildEvent[] = [];
  for (const c of Array.isArray(childrenState) ? childrenState : []) {
    if (!isRecord(c) || c['type'] !== 'm.space.child' || typeof c['state_key'] !== 'string' || !isRecord(c['content'])) continue;
    children.push({
      state_key: c['state_key'],
      content: c['content'],
      origin_server_ts: typeof c['origin_server_ts'] === 'number' ? c['origin_server_ts'] : 0,
      sender: typeof c['sender'] === 'string' ? c['sender'] : '',
    });
  }
  return { summary: summary as unknown as RoomSummary, children };
}

/**
 * Rooms of a space that this server does not know, asked of the servers in
 * the m.space.child event's `via` (server-server-api "Spaces", GET
 * /hierarchy/{roomId}). The answer's `children` are remembered too, so a walk
 * one level further needs no request for them.
 */
@Injectable()
export class RemoteHierarchy {
  private readonly cache = new Map<string, { room: RemoteRoom | null; expiresAt: number }>();

  constructor(@Optional() @Inject(FEDERATION_CLIENT) private readonly federation?: FederationClient) {}

  /** The room as one of `servers` describes it, or undefined when none answers (or refuses it). */
  async get(roomId: string, servers: readonly string[], suggestedOnly: boolean): Promise<RemoteRoom | undefined> {
    const key = `${suggestedOnly ? 1 : 0}${roomId}`;
    const cached = this.cache.get(key);
    if (cached && cached.expiresAt > Date.now()) return cached.room ?? undefined;
    if (!this.federation || servers.length === 0) return undefined;
    for (const server of servers.slice(0, MAX_SERVERS)) {
      let answer: JsonObject;
      try {
        answer = await this.federation.request<JsonObject>({
          destination: server,
          method: 'GET',
          path: `/_matrix/federation/v1/hierarchy/${encodeURIComponent(roomId)}`,
          query: { suggested_only: suggestedOnly },
          timeoutMs: 10_000,
          maxResponseBytes: 4 * 1024 * 1024,
        });
      } catch {
        continue; // unknown there, refused, or unreachable: the next server may know it
      }
      const room = toRemoteRoom(answer['room']);
      if (!room || room.summary.room_id !== roomId) continue;
      this.remember(key, room);
      for (const child of Array.isArray(answer['children']) ? answer['children'] : []) {
        const remote = toRemoteRoom(child);
        // Children are given with all their m.space.child events; with suggested_only they are filtered when walked.
        if (remote) this.remember(`${suggestedOnly ? 1 : 0}${remote.summary.room_id}`, remote);
      }
      return room;
    }
    this.remember(key, null);
    return undefined;
  }

  private remember(key: string, room: RemoteRoom | null): void {
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(key, { room, expiresAt: Date.now() + CACHE_MS });
  }
}
