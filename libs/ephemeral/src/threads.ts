import type { JsonObject } from '@atrium/matrix';
import { relationOf } from '@atrium/rooms';

/**
 * Which thread an event is in (client-server-api "Threading" and "Threaded
 * read receipts"), for checking that a threaded receipt's event belongs to
 * its `thread_id` (receipts.yaml 400: "The `event_id` is not related to the
 * `thread_id`").
 *
 * "An event is considered to be 'in a thread' if: it has a `rel_type` of
 * `m.thread`, or following the event relationships, it has a parent event
 * which references the thread root with a `rel_type` of `m.thread`.
 * Implementations should not recurse infinitely, though: a maximum of 3 hops
 * is recommended". "Thread roots are considered to be in the main timeline,
 * as are events that are related to a thread root via non-thread relations."
 */

/** The thread ID of the main timeline (receipts and notification counts). */
export const MAIN_THREAD = 'main';

/** The spec's recommended bound on relation hops. */
export const MAX_THREAD_HOPS = 3;

/** What threadOf needs of an event: its content (only `m.relates_to` is read, through the rooms lib's relationOf). */
export interface RelatedEvent {
  content: JsonObject;
}

/**
 * The thread root's event ID, or MAIN_THREAD. `load` fetches a parent event
 * of the same room (null when unknown: the chain ends in the main timeline).
 */
export async function threadOf(event: RelatedEvent, load: (eventId: string) => Promise<RelatedEvent | null>, maxHops = MAX_THREAD_HOPS): Promise<string> {
  let current: RelatedEvent | null = event;
  for (let hop = 0; current !== null && hop <= maxHops; hop++) {
    const relation = relationOf(current.content);
    if (relation === null) return MAIN_THREAD;
    if (relation.relType === 'm.thread') return relation.eventId;
    if (hop === maxHops) break;
    current = await load(relation.eventId);
  }
  return MAIN_THREAD;
}
