import { Controller, Get, Param, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, type Requester } from '@atrium/http';
import { getRoomVersion, redactEvent } from '@atrium/matrix';
import type { EventRecord } from '@atrium/rooms';
import { RelationsService } from './relations.service';
import { eventsPositionParam, limitParam } from './params';
import { HISTORY_FLOOR, paginationToken } from '../sync/sync-token';

const DEFAULT_LIMIT = 5;
const MAX_LIMIT = 100;
/** Thread events read per batch, and batches per request (bounded when most threads are filtered out). */
const BATCH = 200;
const MAX_BATCHES = 10;

type Json = Record<string, unknown>;

/**
 * GET /_matrix/client/v1/rooms/{roomId}/threads (threads_list.yaml, v1.4).
 *
 * "The thread roots, ordered by the latest_event in each event's aggregated
 * children": the room's m.thread events are read newest first (the
 * `room_id, rel_type, stream` index libs/rooms keeps), and each root is given
 * at its first (latest) thread event. `next_batch` is the position just
 * below the last root's latest thread event; a root met again on a later
 * page (an older reply of a thread already given) is recognised by having a
 * thread event above that position, and skipped.
 */
@Controller('_matrix/client/v1')
@UseGuards(AccessTokenGuard)
export class ThreadsController {
  constructor(private readonly service: RelationsService) {}

  @Get('rooms/:roomId/threads')
  @AllowGuests()
  async threads(
    @CurrentRequester() requester: Requester,
    @Param('roomId') roomId: string,
    @Query('include') includeParam: string | undefined,
    @Query('limit') limitRaw: string | undefined,
    @Query('from') fromRaw: string | undefined,
  ): Promise<Json> {
    if (!roomId.startsWith('!')) throw Errors.invalidParam(`Invalid room ID ${JSON.stringify(roomId)}`);
    const include = includeParam === undefined || includeParam === '' ? 'all' : includeParam;
    if (include !== 'all' && include !== 'participated') throw Errors.invalidParam('include must be all or participated');
    const limit = limitParam(limitRaw, DEFAULT_LIMIT, MAX_LIMIT);
    // 400 M_INVALID_PARAM "Unknown pagination token".
    const from = eventsPositionParam('from', fromRaw);
    await this.service.requireReader(roomId, requester.userId);

    const rooms = this.service.rooms;
    const canSee = this.service.visibilityChecker(requester.userId);
    const safe = await rooms.safeStreamPosition();
    const top = Math.min(from ?? safe, safe);
    const seen = new Set<string>();
    const roots: EventRecord[] = [];
    /** Each root's latest thread event position (its place in the order). */
    const latestOf = new Map<string, number>();
    let high = top;
    let next: number | undefined;
    let more = false;
    outer: for (let round = 0; round < MAX_BATCHES && high > HISTORY_FLOOR; round++) {
      const batch = await rooms.roomRelations(roomId, 'm.thread', { to: high, limit: BATCH });
      for (const event of batch) {
        high = event.stream - 1;
        const rootId = event.relates_to;
        if (!rootId || seen.has(rootId)) continue;
        seen.add(rootId);
        if (roots.length === limit) {
          next = (latestOf.get(roots[roots.length - 1]._id) ?? high + 1) - 1;
          more = true;
          break outer;
        }
        // A thread with an event above this page's top was given on an earlier page.
        if (top < safe && (await rooms.relationsOf(rootId, { relType: 'm.thread', from: top, to: safe, limit: 1 })).length > 0) continue;
        const root = await rooms.getEvent(rootId);
        if (!root || root.room_id !== roomId || !(await canSee(root))) continue;
        if (include === 'participated' && !(await this.participated(requester.userId, root))) continue;
        latestOf.set(root._id, event.stream);
        roots.push(root);
      }
      if (batch.length < BATCH) {
        high = HISTORY_FLOOR;
        break;
      }
    }
    if (!more && high > HISTORY_FLOOR) next = high; // the bounded walk stopped early: resume below it
    const chunk = await this.service.format(roots, requester);
    // threads_list.yaml: "If the thread root event was sent by an ignored user, the event is returned redacted
    // to the caller" (content reduced by the room version's redaction rules; the thread's aggregation stays).
    const ignored = await this.service.ignoredUsers(requester.userId);
    const version = ignored.size > 0 && roots.some((r) => ignored.has(r.sender)) ? getRoomVersion((await rooms.getRoom(roomId))?.version ?? '') : undefined;
    if (version) {
      for (const event of chunk) if (ignored.has(event['sender'] as string)) event['content'] = redactEvent({ type: event['type'], content: event['content'] }, version).content;
    }
    const out: Json = { chunk };
    if (next !== undefined) out['next_batch'] = paginationToken(next);
    return out;
  }

  /** threading.md: the user sent the root, or an event relating to it with m.thread. */
  private async participated(userId: string, root: EventRecord): Promise<boolean> {
    if (root.sender === userId) return true;
    return (await this.service.rooms.relationsOf(root._id, { relType: 'm.thread', sender: userId, limit: 1 })).length > 0;
  }
}
