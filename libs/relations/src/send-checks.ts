import { MatrixError } from '@atrium/http';
import type { JsonObject } from '@atrium/matrix';
import { eventOf, relationOf, type RoomStore } from '@atrium/rooms';

/**
 * Checks on a relation a client sends (PUT /rooms/{roomId}/send), before the
 * room server builds the event:
 *
 * - threading.md "Validation of m.thread relationships": "Servers SHOULD
 *   reject client requests which attempt to start a thread off an event with
 *   an m.relates_to property … HTTP 400 … servers should use M_UNKNOWN".
 *   (A parent that is itself a relation, by rel_type; a reply's m.in_reply_to
 *   alone is not a relation here, as in libs/rooms relationOf.)
 * - event_annotations.md "Avoiding duplicate annotations": "Homeservers
 *   should prevent users from sending a second annotation for a given event
 *   with identical event type and annotation key (unless the first event has
 *   been redacted) … 400 … M_DUPLICATE_ANNOTATION".
 *
 * Best effort: two identical annotations sent at the same instant can both
 * pass (the check is not inside the room server's per-room queue); the spec
 * already asks clients to deduplicate, as for annotations over federation.
 */
export async function checkNewRelation(rooms: RoomStore, roomId: string, sender: string, type: string, content: JsonObject): Promise<void> {
  const relation = relationOf(content);
  if (!relation) return;
  if (relation.relType === 'm.thread') {
    const parent = await rooms.getEvent(relation.eventId);
    if (parent && parent.room_id === roomId && relationOf(eventOf(parent).content)) {
      throw new MatrixError(400, 'M_UNKNOWN', 'Cannot start a thread from an event with a relation');
    }
  }
  if (relation.relType === 'm.annotation') {
    const key = (content['m.relates_to'] as JsonObject)['key'];
    if (typeof key !== 'string') return;
    const mine = await rooms.relationsOf(relation.eventId, { relType: 'm.annotation', sender, limit: 1000 });
    for (const existing of mine) {
      if (existing.type !== type || existing.room_id !== roomId) continue;
      const rel = eventOf(existing).content?.['m.relates_to'];
      if (rel && typeof rel === 'object' && !Array.isArray(rel) && rel['key'] === key) {
        throw new MatrixError(400, 'M_DUPLICATE_ANNOTATION', 'You already sent this annotation');
      }
    }
  }
}
