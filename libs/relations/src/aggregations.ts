import type { JsonObject, JsonValue } from '@atrium/matrix';
import { eventOf, relationOf, toClientEvent, type ClientEvent, type EventRecord, type RoomStore } from '@atrium/rooms';

/**
 * Bundled aggregations (client-server-api "Aggregations of child events"):
 * `unsigned["m.relations"]` of an event served by /event, /messages,
 * /context, /relations, /threads, /search and /sync timelines, keyed by
 * rel_type. Three rel_types are aggregated by the server:
 *
 * - `m.replace` ("Server-side aggregation of m.replace relationships", v1.7):
 *   the most recent *valid* replacement, formatted as a normal event; "most
 *   recent" compares origin_server_ts, then the lexicographically largest
 *   event_id. Not bundled on a redacted original.
 * - `m.thread` ("Server-side aggregation of m.thread relationships"):
 *   `latest_event` (topologically, i.e. highest stream position here, with its
 *   own bundled aggregations), `count`, `current_user_participated`.
 * - `m.reference` ("Server-side aggregation of m.reference"): `{ chunk: [{ event_id }] }`.
 *
 * `m.annotation` is *not* aggregated ("m.annotation relationships are not
 * aggregated by the server … not included in the m.relations property").
 * State events get no bundle ("State events do not currently receive bundled
 * aggregations"). Redacted children are never counted: RoomStore's relation
 * reads leave them out ("when a child event is redacted then the relationship
 * is broken"). Children sent by users the requester ignores are left out when
 * the caller passes `ignoredUsers` ("Servers must additionally ensure they do
 * not consider child events from ignored users").
 */

export const AGGREGATED_REL_TYPES = ['m.replace', 'm.thread', 'm.reference'] as const;

/** Cap on the m.reference chunk of one event, so one bundle stays bounded. */
const MAX_REFERENCES = 50;
/** Edits of one event read to find the most recent valid one (newest positions first). */
const MAX_EDITS_READ = 100;

export interface AggregationOptions {
  /** The user the events are served to (m.thread current_user_participated). */
  userId: string;
  /** Users the requester ignores (m.ignored_user_list): their children are not aggregated. */
  ignoredUsers?: ReadonlySet<string>;
  /** Current time for unsigned.age of bundled events. */
  now?: number;
  /** Only children at or below this stream position (the snapshot a /sync reads up to). */
  upTo?: number;
}

/**
 * Validity of a replacement (event_replacements "Validity of replacement
 * events"): same room, same sender, same type, neither has a state_key, the
 * original is not itself an m.replace, and the replacement has an
 * `m.new_content` object.
 */
export function isValidReplacement(original: EventRecord, replacement: EventRecord): boolean {
  if (original.room_id !== replacement.room_id) return false;
  if (original.sender !== replacement.sender) return false;
  if (original.type !== replacement.type) return false;
  if (original.state_key !== null || replacement.state_key !== null) return false;
  if (original.rel_type === 'm.replace' || relationOf(eventOf(original).content)?.relType === 'm.replace') return false;
  const newContent = eventOf(replacement).content?.['m.new_content'];
  return typeof newContent === 'object' && newContent !== null && !Array.isArray(newContent);
}

/** "most recent … comparing origin_server_ts; if … identical, the lexicographically largest event_id". */
function moreRecent(a: EventRecord, b: EventRecord): boolean {
  if (a.origin_server_ts !== b.origin_server_ts) return a.origin_server_ts > b.origin_server_ts;
  return a._id > b._id;
}

/** Rows the probe for children reads at most per room. */
const PROBE_LIMIT = 1000;

/**
 * The bundled aggregations of each of `records`, by event ID (events with
 * nothing to bundle are absent). One query finds which events have children
 * at all; only those are read further.
 */
export async function aggregationsFor(rooms: RoomStore, records: readonly EventRecord[], options: AggregationOptions, depth = 0): Promise<Map<string, JsonObject>> {
  const out = new Map<string, JsonObject>();
  const parents = records.filter((r) => r.state_key === null);
  if (parents.length === 0) return out;
  const upTo = options.upTo ?? Number.MAX_SAFE_INTEGER;
  const ignored = options.ignoredUsers ?? new Set<string>();
  // One probe per room (a page of events is usually one room's).
  const byRoom = new Map<string, string[]>();
  for (const p of parents) {
    const ids = byRoom.get(p.room_id) ?? [];
    ids.push(p._id);
    byRoom.set(p.room_id, ids);
  }
  const children: EventRecord[] = [];
  let truncated = false;
  for (const [roomId, ids] of byRoom) {
    const found = await rooms.relationsOfMany(roomId, ids, AGGREGATED_REL_TYPES, PROBE_LIMIT);
    // The probe is capped; a parent whose children were cut off is found by its own reads below.
    if (found.length >= PROBE_LIMIT) truncated = true;
    children.push(...found);
  }
  const kinds = new Map<string, Set<string>>();
  for (const child of children) {
    if (child.stream > upTo || child.relates_to == null || child.rel_type == null) continue;
    let set = kinds.get(child.relates_to);
    if (!set) kinds.set(child.relates_to, (set = new Set()));
    set.add(child.rel_type);
  }

  for (const parent of parents) {
    const has = kinds.get(parent._id);
    if (!has && !truncated) continue;
    const relations: Record<string, JsonValue> = {};
    const visible = (c: EventRecord): boolean => c.room_id === parent.room_id && c.stream <= upTo && !ignored.has(c.sender);

    if ((truncated || has?.has('m.replace')) && !parent.redacted) {
      // "If the original event is redacted, any m.replace relationship should not be bundled with it."
      const edits = (await rooms.relationsOf(parent._id, { relType: 'm.replace', to: upTo, limit: MAX_EDITS_READ })).filter(visible);
      let best: EventRecord | undefined;
      for (const edit of edits) if (isValidReplacement(parent, edit) && (!best || moreRecent(edit, best))) best = edit;
      if (best) relations['m.replace'] = clientEventJson(toClientEvent(best, { now: options.now }));
    }

    if (truncated || has?.has('m.thread')) {
      // latest_event: "the most recent event (topologically to the server) in the thread sent by an
      // un-ignored user"; with ignored users a bounded window of the newest is searched.
      const window = ignored.size > 0 ? 200 : 1;
      const latest = (await rooms.relationsOf(parent._id, { relType: 'm.thread', to: upTo, limit: window })).filter(visible)[0];
      if (latest) {
        let count = await rooms.countRelations(parent._id, 'm.thread', upTo);
        if (ignored.size > 0) {
          for (const user of ignored) count -= (await rooms.relationsOf(parent._id, { relType: 'm.thread', sender: user, to: upTo, limit: 10_000 })).length;
        }
        // current_user_participated: the root's sender, or the sender of an m.thread child.
        const participated =
          parent.sender === options.userId || (await rooms.relationsOf(parent._id, { relType: 'm.thread', sender: options.userId, to: upTo, limit: 1 })).length > 0;
        const latestEvent = toClientEvent(latest, { now: options.now });
        // "child events of the latest_event should themselves be aggregated"; depth-capped against loops.
        if (depth < 2) {
          const nested = await aggregationsFor(rooms, [latest], options, depth + 1);
          const bundle = nested.get(latest._id);
          if (bundle) latestEvent.unsigned = { ...latestEvent.unsigned, 'm.relations': bundle };
        }
        relations['m.thread'] = { latest_event: clientEventJson(latestEvent), count: Math.max(count, 1), current_user_participated: participated };
      }
    }

    if (truncated || has?.has('m.reference')) {
      const refs = (await rooms.relationsOf(parent._id, { relType: 'm.reference', to: upTo, direction: 'forward', limit: MAX_REFERENCES })).filter(visible);
      if (refs.length > 0) relations['m.reference'] = { chunk: refs.map((r) => ({ event_id: r._id })) };
    }

    if (Object.keys(relations).length > 0) out.set(parent._id, relations);
  }
  return out;
}

function clientEventJson(event: ClientEvent): JsonObject {
  return JSON.parse(JSON.stringify(event)) as JsonObject;
}

/**
 * Puts the bundled aggregations into `unsigned["m.relations"]` of already
 * formatted events (ClientEvent objects, or projections of them), matched by
 * `event_id`. The one call /event, /messages, /context, /sync, /relations,
 * /threads and /search make after formatting. An event whose `unsigned` was
 * projected away by a filter's `event_fields` is left as the filter asked.
 * `records` are the stored events the objects were formatted from (by ID).
 */
export async function bundleAggregations<T extends Record<string, unknown>>(
  rooms: RoomStore,
  events: T[],
  records: readonly EventRecord[],
  options: AggregationOptions,
): Promise<T[]> {
  const bundles = await aggregationsFor(rooms, records, options);
  if (bundles.size === 0) return events;
  for (const event of events) {
    const id = event['event_id'];
    if (typeof id !== 'string') continue;
    const bundle = bundles.get(id);
    const unsigned = event['unsigned'];
    if (!bundle || typeof unsigned !== 'object' || unsigned === null || Array.isArray(unsigned)) continue;
    const u = unsigned as Record<string, unknown>;
    u['m.relations'] = { ...((u['m.relations'] as Record<string, unknown> | undefined) ?? {}), ...bundle };
  }
  return events;
}
