import { Controller, Get, Module, Param, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, type Requester } from '@atrium/http';
import { parseRoomId } from '@atrium/matrix';
import { eventOf } from '@atrium/rooms';
import { RoomsModule } from '../rooms/rooms.module';
import { RoomsService, type RoomSummary } from '../rooms/rooms.service';
import { booleanParam, integerParam } from '../sync/sync.controller';
import { formatHierarchyToken, isValidChild, orderChildren, parseHierarchyToken, type ChildEvent } from './hierarchy';
import { RemoteHierarchy } from './remote-hierarchy';

/** Rooms per page without `limit`, and the most we give ("Servers should apply a default value, and impose a maximum"). */
const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 100;
/** Depth without `max_depth`, and the most we go. */
const DEFAULT_MAX_DEPTH = 10;
const MAX_DEPTH = 10;
/** Rooms one request walks at most (every page re-walks the tree from the root). */
const MAX_ROOMS = 1000;

type StrippedChild = { type: 'm.space.child'; state_key: string; content: Record<string, unknown>; sender: string; origin_server_ts: number };
type HierarchyRoom = RoomSummary & { children_state: StrippedChild[] };
/** A room of the walk: known here (children read from our state when visited) or described by another server. */
type WalkNode = { summary: RoomSummary; depth: number; remoteChildren?: ChildEvent[] };

/**
 * GET /v1/rooms/{roomId}/hierarchy (space_hierarchy.yaml, module spaces.md).
 *
 * A depth-first walk from the space over valid m.space.child events, in the
 * spaces.md order, giving each room the user may see (spec list: joined or
 * invited; a public, knock or knock_restricted join rule; restricted with a
 * joined allowed room; world_readable history) with its summary and its
 * children as stripped state with `origin_server_ts`. A room the user may not
 * see is left out with its subtree. Rooms this server does not know are left
 * out unless a server of the m.space.child's `via` describes them (federation
 * GET /hierarchy, remote-hierarchy.ts), whose answer then stands for them
 * (and, at the root, the server of a room ID that names one). The token is an offset into the walk together with
 * `suggested_only` and `max_depth`, so a page after a change of the tree may
 * repeat or skip a room, which a re-walk per page cannot avoid.
 */
@Controller('_matrix/client/v1')
@UseGuards(AccessTokenGuard)
export class HierarchyController {
  constructor(
    private readonly rooms: RoomsService,
    private readonly remote: RemoteHierarchy,
  ) {}

  @Get('rooms/:roomId/hierarchy')
  async hierarchy(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Query('suggested_only') suggestedParam: string | undefined,
    @Query('limit') limitParam: string | undefined,
    @Query('max_depth') maxDepthParam: string | undefined,
    @Query('from') from: string | undefined,
  ): Promise<{ rooms: HierarchyRoom[]; next_batch?: string }> {
    const suggestedOnly = booleanParam('suggested_only', suggestedParam, false);
    const limit = Math.min(integerParam('limit', limitParam, DEFAULT_LIMIT), MAX_LIMIT);
    if (limit < 1) throw Errors.invalidParam('limit must be an integer greater than zero');
    const maxDepth = Math.min(integerParam('max_depth', maxDepthParam, DEFAULT_MAX_DEPTH), MAX_DEPTH);
    let offset = 0;
    if (from !== undefined && from !== '') {
      const token = parseHierarchyToken(from);
      if (!token) throw Errors.invalidParam('Unknown pagination token');
      // 400: "`suggested_only` or `max_depth` changed during pagination".
      if (token.suggestedOnly !== suggestedOnly || (maxDepthParam !== undefined && token.maxDepth !== maxDepth)) {
        throw Errors.invalidParam('suggested_only and max_depth cannot change on paginated requests');
      }
      offset = token.offset;
    }
    const effectiveDepth = from ? (parseHierarchyToken(from)?.maxDepth ?? maxDepth) : maxDepth;

    // 403: "The room is not set up for peeking", "The user has been banned", "The room does not exist".
    const forbidden = () => Errors.forbidden('You are not allowed to view this room.');
    if (!roomId.startsWith('!')) throw forbidden();
    const rootNode = await this.node(roomId, 0, this.roomIdServer(roomId), suggestedOnly, requester.userId);
    if (!rootNode) throw forbidden();

    const out: HierarchyRoom[] = [];
    const seen = new Set<string>([roomId]);
    const stack: WalkNode[] = [rootNode];
    let given = 0;
    let more = false;
    while (stack.length > 0 && given < MAX_ROOMS) {
      const { summary, depth, remoteChildren } = stack.pop()!;
      const children = remoteChildren ?? (await this.children(summary.room_id, suggestedOnly));
      if (given >= offset) {
        if (out.length === limit) {
          more = true;
          break;
        }
        out.push({ ...summary, children_state: children.map((c) => ({ type: 'm.space.child', state_key: c.state_key, content: c.content, sender: c.sender, origin_server_ts: c.origin_server_ts })) });
      }
      given += 1;
      if (depth >= effectiveDepth) continue;
      const next: WalkNode[] = [];
      for (const child of children) {
        if (seen.has(child.state_key)) continue;
        seen.add(child.state_key);
        const via = (child.content['via'] as string[]).filter((server) => server !== this.rooms.serverName);
        const node = await this.node(child.state_key, depth + 1, via, suggestedOnly, requester.userId);
        if (node) next.push(node);
      }
      // Depth-first: the first child is walked next.
      for (let i = next.length - 1; i >= 0; i--) stack.push(next[i]);
    }
    const response: { rooms: HierarchyRoom[]; next_batch?: string } = { rooms: out };
    if (more) response.next_batch = formatHierarchyToken({ offset: offset + out.length, suggestedOnly, maxDepth: effectiveDepth });
    return response;
  }

  /**
   * A room of the walk the user may see: from our own state when we know the
   * room, else as one of `servers` describes it; undefined when neither.
   */
  private async node(roomId: string, depth: number, servers: readonly string[], suggestedOnly: boolean, userId: string): Promise<WalkNode | undefined> {
    const room = await this.rooms.store.getRoom(roomId);
    if (room) {
      const summary = await this.rooms.summary(room);
      return (await this.canSee(roomId, summary, userId)) ? { summary, depth } : undefined;
    }
    const remote = await this.remote.get(roomId, servers, suggestedOnly);
    if (!remote || !(await this.canSee(roomId, remote.summary, userId))) return undefined;
    const children = orderChildren(remote.children.filter((c) => isValidChild(c) && (!suggestedOnly || c.content['suggested'] === true)));
    return { summary: remote.summary, depth, remoteChildren: children };
  }

  /** The server a room ID names (room versions before 12), to ask about a root room this server does not know. */
  private roomIdServer(roomId: string): string[] {
    const parsed = parseRoomId(roomId);
    return parsed?.kind === 'domain' && parsed.domain !== this.rooms.serverName ? [parsed.domain] : [];
  }

  /** The room's valid m.space.child events in spaces.md order (only `suggested: true` ones with suggested_only). */
  private async children(roomId: string, suggestedOnly: boolean): Promise<ChildEvent[]> {
    const events: ChildEvent[] = [];
    for (const record of await this.rooms.store.currentState(roomId, 'm.space.child')) {
      const event = eventOf(record);
      const child: ChildEvent = { state_key: record.state_key ?? '', content: event.content, origin_server_ts: record.origin_server_ts, sender: record.sender };
      if (!isValidChild(child)) continue;
      if (suggestedOnly && child.content['suggested'] !== true) continue;
      events.push(child);
    }
    return orderChildren(events);
  }

  /** The response's inclusion rules (space_hierarchy.yaml `rooms`); a banned user sees nothing of the room. */
  private async canSee(roomId: string, summary: RoomSummary, userId: string): Promise<boolean> {
    const membership = (await this.rooms.store.getMembership(roomId, userId))?.membership;
    if (membership === 'ban') return false;
    if (membership === 'join' || membership === 'invite') return true;
    if (summary.world_readable) return true;
    if (['public', 'knock', 'knock_restricted'].includes(summary.join_rule ?? '')) return true;
    if (summary.join_rule === 'restricted' && summary.allowed_room_ids) {
      for (const allowed of summary.allowed_room_ids) {
        if ((await this.rooms.store.getMembership(allowed, userId))?.membership === 'join') return true;
      }
    }
    return false;
  }
}

/** Spaces (issue 4): the space hierarchy. */
@Module({ imports: [RoomsModule], controllers: [HierarchyController], providers: [RemoteHierarchy] })
export class SpacesModule {}
