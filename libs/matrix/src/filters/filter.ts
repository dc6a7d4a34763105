/**
 * Sync and room event filters.
 * Spec: data/api/client-server/definitions/sync_filter.yaml (Filter, RoomFilter),
 * definitions/room_event_filter.yaml (RoomEventFilter), definitions/event_filter.yaml
 * (EventFilter); content/client-server-api/_index.md "Filtering" and "Lazy-loading
 * room members"; content/appendices.md "Dot-separated property paths".
 *
 * Pure: parse and validate a filter (naming the bad field), decide whether an
 * event or a room passes, and project an event to `event_fields`.
 */

/** definitions/event_filter.yaml */
export interface EventFilter {
  limit?: number;
  types?: string[];
  not_types?: string[];
  senders?: string[];
  not_senders?: string[];
}

/** definitions/room_event_filter.yaml: an EventFilter plus room and content conditions. */
export interface RoomEventFilter extends EventFilter {
  rooms?: string[];
  not_rooms?: string[];
  contains_url?: boolean;
  lazy_load_members?: boolean;
  include_redundant_members?: boolean;
  unread_thread_notifications?: boolean;
}

/** definitions/sync_filter.yaml "RoomFilter". */
export interface RoomFilter {
  rooms?: string[];
  not_rooms?: string[];
  include_leave?: boolean;
  ephemeral?: RoomEventFilter;
  state?: RoomEventFilter;
  timeline?: RoomEventFilter;
  account_data?: RoomEventFilter;
}

/** definitions/sync_filter.yaml "Filter". */
export interface Filter {
  event_fields?: string[];
  event_format?: 'client' | 'federation';
  presence?: EventFilter;
  account_data?: EventFilter;
  room?: RoomFilter;
}

/**
 * A filter that failed validation. `field` is the dotted path of the bad
 * property (`room.timeline.limit`). `M_BAD_JSON` when a value has the wrong
 * JSON type, `M_INVALID_PARAM` when it has the right type but a value the
 * schema forbids (a limit below 1, an unknown event_format, a room ID without `!`).
 */
export class FilterValidationError extends Error {
  constructor(
    readonly field: string,
    message: string,
    readonly errcode: 'M_BAD_JSON' | 'M_INVALID_PARAM',
  ) {
    super(`${field}: ${message}`);
    this.name = 'FilterValidationError';
  }
}

/**
 * Bounds we impose so one filter cannot make the server do unbounded work
 * ("Servers should apply a default value, and impose a maximum value to avoid
 * resource exhaustion", event_filter.yaml `limit`). A limit above the maximum
 * is accepted and clamped when used (see `effectiveLimit`), as other servers do;
 * over-long lists are refused.
 */
export const FILTER_LIMITS = {
  /** Entries in any one list (types, senders, rooms, event_fields). */
  maxListLength: 1000,
  /** Characters in one list entry. */
  maxEntryLength: 1024,
  /** The largest `limit` a filter can ask for; larger values are clamped. */
  maxEventLimit: 1000,
} as const;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function bad(field: string, message: string): FilterValidationError {
  return new FilterValidationError(field, message, 'M_BAD_JSON');
}

function invalid(field: string, message: string): FilterValidationError {
  return new FilterValidationError(field, message, 'M_INVALID_PARAM');
}

function join(prefix: string, key: string): string {
  return prefix ? `${prefix}.${key}` : key;
}

function readObject(obj: Json, key: string, prefix: string): Json | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (!isObject(value)) throw bad(join(prefix, key), 'must be an object');
  return value;
}

function readBoolean(obj: Json, key: string, prefix: string): boolean | undefined {
  const value = obj[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw bad(join(prefix, key), 'must be a boolean');
  return value;
}

/** A list of strings; `sigil` when each entry must start with it (the schema's `pattern: "^!"` / `"^@"`). */
function readStringList(obj: Json, key: string, prefix: string, sigil?: string): string[] | undefined {
  const value = obj[key];
  const field = join(prefix, key);
  if (value === undefined) return undefined;
  if (!Array.isArray(value)) throw bad(field, 'must be a list of strings');
  if (value.length > FILTER_LIMITS.maxListLength) throw invalid(field, `must have at most ${FILTER_LIMITS.maxListLength} entries`);
  for (const entry of value) {
    if (typeof entry !== 'string') throw bad(field, 'must be a list of strings');
    if (entry.length > FILTER_LIMITS.maxEntryLength) throw invalid(field, `entries must be at most ${FILTER_LIMITS.maxEntryLength} characters`);
    if (sigil !== undefined && !entry.startsWith(sigil)) throw invalid(field, `entries must start with "${sigil}"`);
  }
  return [...(value as string[])];
}

function parseEventFilterInto(obj: Json, prefix: string, out: EventFilter): void {
  const limit = obj.limit;
  if (limit !== undefined) {
    if (typeof limit !== 'number' || !Number.isInteger(limit)) throw bad(join(prefix, 'limit'), 'must be an integer');
    // event_filter.yaml: "must be an integer greater than 0".
    if (limit < 1) throw invalid(join(prefix, 'limit'), 'must be greater than 0');
    out.limit = limit;
  }
  const types = readStringList(obj, 'types', prefix);
  if (types) out.types = types;
  const notTypes = readStringList(obj, 'not_types', prefix);
  if (notTypes) out.not_types = notTypes;
  const senders = readStringList(obj, 'senders', prefix, '@');
  if (senders) out.senders = senders;
  const notSenders = readStringList(obj, 'not_senders', prefix, '@');
  if (notSenders) out.not_senders = notSenders;
}

/** Validates an EventFilter (presence, account_data). Unknown keys are ignored, as JSON schemas without additionalProperties allow. */
export function parseEventFilter(value: unknown, prefix = ''): EventFilter {
  if (!isObject(value)) throw bad(prefix || 'filter', 'must be an object');
  const out: EventFilter = {};
  parseEventFilterInto(value, prefix, out);
  return out;
}

/** Validates a RoomEventFilter (the /messages `filter` parameter, and room.state/timeline/ephemeral/account_data). */
export function parseRoomEventFilter(value: unknown, prefix = ''): RoomEventFilter {
  if (!isObject(value)) throw bad(prefix || 'filter', 'must be an object');
  const out: RoomEventFilter = {};
  parseEventFilterInto(value, prefix, out);
  const rooms = readStringList(value, 'rooms', prefix, '!');
  if (rooms) out.rooms = rooms;
  const notRooms = readStringList(value, 'not_rooms', prefix, '!');
  if (notRooms) out.not_rooms = notRooms;
  for (const key of ['contains_url', 'lazy_load_members', 'include_redundant_members', 'unread_thread_notifications'] as const) {
    const flag = readBoolean(value, key, prefix);
    if (flag !== undefined) out[key] = flag;
  }
  return out;
}

/** Validates a whole sync Filter (POST /user/{userId}/filter, /sync `filter`). Throws FilterValidationError. */
export function parseFilter(value: unknown): Filter {
  if (!isObject(value)) throw bad('filter', 'must be an object');
  const out: Filter = {};
  const eventFields = readStringList(value, 'event_fields', '');
  if (eventFields) out.event_fields = eventFields;
  const format = value.event_format;
  if (format !== undefined) {
    if (typeof format !== 'string') throw bad('event_format', 'must be a string');
    if (format !== 'client' && format !== 'federation') throw invalid('event_format', 'must be "client" or "federation"');
    out.event_format = format;
  }
  const presence = readObject(value, 'presence', '');
  if (presence) out.presence = parseEventFilter(presence, 'presence');
  const accountData = readObject(value, 'account_data', '');
  if (accountData) out.account_data = parseEventFilter(accountData, 'account_data');
  const room = readObject(value, 'room', '');
  if (room) {
    const r: RoomFilter = {};
    const rooms = readStringList(room, 'rooms', 'room', '!');
    if (rooms) r.rooms = rooms;
    const notRooms = readStringList(room, 'not_rooms', 'room', '!');
    if (notRooms) r.not_rooms = notRooms;
    const includeLeave = readBoolean(room, 'include_leave', 'room');
    if (includeLeave !== undefined) r.include_leave = includeLeave;
    for (const key of ['ephemeral', 'state', 'timeline', 'account_data'] as const) {
      const sub = readObject(room, key, 'room');
      if (sub) r[key] = parseRoomEventFilter(sub, `room.${key}`);
    }
    out.room = r;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Matching
// ---------------------------------------------------------------------------

const patternCache = new Map<string, RegExp>();

/**
 * event_filter.yaml `types`/`not_types`: "A `*` can be used as a wildcard to
 * match any sequence of characters." Every other character is literal.
 */
export function eventTypeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  let regex = patternCache.get(pattern);
  if (!regex) {
    const source = pattern
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*');
    regex = new RegExp(`^${source}$`, 's');
    if (patternCache.size > 10_000) patternCache.clear();
    patternCache.set(pattern, regex);
  }
  return regex.test(type);
}

/** The fields of an event a filter looks at. */
export interface FilterableEvent {
  type: string;
  sender?: string;
  room_id?: string;
  content?: unknown;
}

/**
 * Does the event pass? For each pair the `not_` list wins: "A matching type
 * will be excluded even if it is listed in the `types` filter" (likewise
 * senders and rooms); an absent include list includes everything, an empty
 * one includes nothing. `contains_url`: true keeps only events whose content
 * has a `url` key, false keeps only those without, absent ignores it.
 * `limit` is not applied here (see effectiveLimit).
 */
export function eventMatchesFilter(filter: RoomEventFilter | EventFilter | undefined, event: FilterableEvent): boolean {
  if (!filter) return true;
  if (filter.not_types?.some((p) => eventTypeMatches(p, event.type))) return false;
  if (filter.types && !filter.types.some((p) => eventTypeMatches(p, event.type))) return false;
  if (event.sender !== undefined) {
    if (filter.not_senders?.includes(event.sender)) return false;
    if (filter.senders && !filter.senders.includes(event.sender)) return false;
  } else if (filter.senders) {
    return false;
  }
  const roomFilter = filter as RoomEventFilter;
  if (event.room_id !== undefined && !roomMatchesFilter(roomFilter, event.room_id)) return false;
  if (roomFilter.contains_url !== undefined) {
    const content = event.content;
    const hasUrl = isObject(content) && typeof content.url === 'string';
    if (roomFilter.contains_url !== hasUrl) return false;
  }
  return true;
}

/** rooms/not_rooms of a RoomFilter or RoomEventFilter: not_rooms wins, an absent `rooms` includes all. */
export function roomMatchesFilter(filter: { rooms?: string[]; not_rooms?: string[] } | undefined, roomId: string): boolean {
  if (!filter) return true;
  if (filter.not_rooms?.includes(roomId)) return false;
  if (filter.rooms && !filter.rooms.includes(roomId)) return false;
  return true;
}

/** Keeps the rooms a RoomFilter lets through, in their order. */
export function filterRooms(filter: RoomFilter | undefined, roomIds: Iterable<string>): string[] {
  const out: string[] = [];
  for (const roomId of roomIds) if (roomMatchesFilter(filter, roomId)) out.push(roomId);
  return out;
}

/** The number of events to return: the filter's limit (clamped to `max`), or `fallback`. */
export function effectiveLimit(filter: EventFilter | undefined, fallback: number, max: number = FILTER_LIMITS.maxEventLimit): number {
  const limit = filter?.limit;
  if (limit === undefined) return Math.min(fallback, max);
  return Math.max(1, Math.min(limit, max));
}

/** True when lazy-loading of members is on (room_event_filter.yaml `lazy_load_members`). */
export function lazyLoadMembers(filter: RoomEventFilter | undefined): boolean {
  return filter?.lazy_load_members === true;
}

/** `include_redundant_members` "does not apply unless `lazy_load_members` is `true`". */
export function includeRedundantMembers(filter: RoomEventFilter | undefined): boolean {
  return filter?.lazy_load_members === true && filter.include_redundant_members === true;
}

// ---------------------------------------------------------------------------
// event_fields
// ---------------------------------------------------------------------------

/**
 * Splits a dot-separated property path (appendices.md "Dot-separated property
 * paths"): `.` separates, `\.` is a literal dot, `\\` a literal backslash, and
 * "other escape sequences are left as-is" (`\x` is a backslash then `x`).
 */
export function splitPropertyPath(path: string): string[] {
  const parts: string[] = [];
  let current = '';
  for (let i = 0; i < path.length; i++) {
    const ch = path[i];
    if (ch === '\\' && i + 1 < path.length && (path[i + 1] === '.' || path[i + 1] === '\\')) {
      current += path[i + 1];
      i++;
    } else if (ch === '.') {
      parts.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  parts.push(current);
  return parts;
}

/**
 * sync_filter.yaml `event_fields`: "List of event fields to include. If this
 * list is absent then all fields are included … A server may include more
 * fields than were requested." Copies only the listed paths; a path to a
 * missing property is skipped. The input is not changed.
 */
export function projectEventFields<T extends object>(event: T, fields: string[] | undefined): Partial<T> {
  if (fields === undefined) return event;
  const out: Json = {};
  for (const field of fields) {
    const path = splitPropertyPath(field);
    let source: unknown = event;
    let found = true;
    for (const key of path) {
      if (!isObject(source) || !Object.prototype.hasOwnProperty.call(source, key)) {
        found = false;
        break;
      }
      source = source[key];
    }
    if (!found) continue;
    let target = out;
    for (let i = 0; i < path.length - 1; i++) {
      const key = path[i];
      // Own properties only: reading `__proto__` would otherwise reach Object.prototype.
      const next = Object.prototype.hasOwnProperty.call(target, key) ? target[key] : undefined;
      if (!isObject(next)) {
        const created: Json = {};
        Object.defineProperty(target, key, { value: created, enumerable: true, writable: true, configurable: true });
        target = created;
      } else {
        target = next;
      }
    }
    Object.defineProperty(target, path[path.length - 1], { value: structuredClone(source), enumerable: true, writable: true, configurable: true });
  }
  return out as Partial<T>;
}
