/**
 * GET /_matrix/federation/v1/hierarchy/{roomId}. Spec: server-server-api
 * "Spaces", data/api/server-server/space_hierarchy.yaml, module spaces.md.
 *
 * The room and its direct children only ("this endpoint does not paginate";
 * the requesting server walks further itself), with the child rooms this
 * server knows. Access is judged for the requesting server: a room it "could
 * feasibly peek/join" is world_readable, has a public, knock or restricted
 * join rule (the requesting server checks `allowed_room_ids` for its user),
 * or has one of its users joined or invited. Known children it cannot reach
 * are listed in `inaccessible_children`.
 */
import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import { Errors } from '@atrium/http';
import { domainOfId } from '@atrium/matrix';
import { eventOf, type RoomRecord, type RoomStore } from '@atrium/rooms';
import { FederationOrigin } from '../origin';
import { roomSummary, type RoomSummaryFields } from './room-summary';
import { QUERY_ROOM_STORE } from './tokens';

interface ChildState {
  type: 'm.space.child';
  state_key: string;
  content: Record<string, unknown>;
  sender: string;
  origin_server_ts: number;
}

type HierarchyRoom = RoomSummaryFields & { children_state: ChildState[] };

/** spaces.md: a child counts when its state key is a room ID and `via` is a non-empty list of strings. */
function isValidChild(child: ChildState): boolean {
  const via = child.content['via'];
  return child.state_key.startsWith('!') && Array.isArray(via) && via.length > 0 && via.every((v) => typeof v === 'string');
}

/** Children at most: a bound on one answer's work. */
const MAX_CHILDREN = 200;

@Controller('_matrix/federation/v1')
export class FederationHierarchyController {
  constructor(@Inject(QUERY_ROOM_STORE) private readonly rooms: RoomStore) {}

  @Get('hierarchy/:roomId')
  async hierarchy(@FederationOrigin() origin: string, @Param('roomId') roomId: string, @Query('suggested_only') suggestedParam: unknown): Promise<{ room: HierarchyRoom; children: HierarchyRoom[]; inaccessible_children: string[] }> {
    if (suggestedParam !== undefined && suggestedParam !== 'true' && suggestedParam !== 'false') throw Errors.invalidParam('suggested_only must be true or false');
    const suggestedOnly = suggestedParam === 'true';
    // 404: "The room is not known to the server or the requesting server is unable to peek/join it."
    const notFound = () => Errors.notFound('Unknown room');
    const root = roomId.startsWith('!') ? await this.rooms.getRoom(roomId) : null;
    if (!root) throw notFound();
    const rootSummary = await roomSummary(this.rooms, root, true);
    if (!(await this.reachable(root, rootSummary, origin))) throw notFound();
    const rootChildren = await this.children(root._id, suggestedOnly);

    const children: HierarchyRoom[] = [];
    const inaccessible: string[] = [];
    for (const child of rootChildren.slice(0, MAX_CHILDREN)) {
      const room = await this.rooms.getRoom(child.state_key);
      if (!room) continue; // "Rooms which the responding server cannot provide details on will be outright excluded"
      const summary = await roomSummary(this.rooms, room, true);
      if (!(await this.reachable(room, summary, origin))) {
        inaccessible.push(room._id);
        continue;
      }
      children.push({ ...summary, children_state: await this.children(room._id, false) });
    }
    return { room: { ...rootSummary, children_state: rootChildren }, children, inaccessible_children: inaccessible };
  }

  /** The room's valid m.space.child events as stripped state with origin_server_ts (only `suggested: true` ones with suggested_only). */
  private async children(roomId: string, suggestedOnly: boolean): Promise<ChildState[]> {
    const out: ChildState[] = [];
    for (const record of await this.rooms.currentState(roomId, 'm.space.child')) {
      const child: ChildState = { type: 'm.space.child', state_key: record.state_key ?? '', content: eventOf(record).content, sender: record.sender, origin_server_ts: record.origin_server_ts };
      if (!isValidChild(child)) continue;
      if (suggestedOnly && child.content['suggested'] !== true) continue;
      out.push(child);
    }
    return out;
  }

  private async reachable(room: RoomRecord, summary: RoomSummaryFields, origin: string): Promise<boolean> {
    if (summary.world_readable) return true;
    if (['public', 'knock', 'restricted', 'knock_restricted'].includes(summary.join_rule ?? '')) return true;
    const members = await this.rooms.membersOfRoom(room._id, ['join', 'invite']);
    return members.some((m) => domainOfId(m.user_id) === origin);
  }
}
