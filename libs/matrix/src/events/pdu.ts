/**
 * Persistent data unit (PDU) shapes. Spec: content/server-server-api.md
 * ("PDUs") and data/api/server-server/definitions/pdu_v1.yaml, pdu_v3.yaml,
 * pdu_v4.yaml, pdu_v12.yaml (via content/rooms/fragments/*-event-format.md).
 */

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** v1–v2 reference to another event: `[event_id, { sha256: base64 }]`. */
export type EventReferenceV1 = [string, { sha256: string }];

/** The PDU as it travels over federation. Fields differ by room version; see RoomVersion. */
export interface Pdu {
  /** Present only in room versions 1 and 2. */
  event_id?: string;
  /** Absent only on the m.room.create event of room version 12. */
  room_id?: string;
  sender: string;
  type: string;
  state_key?: string;
  content: JsonObject;
  origin_server_ts: number;
  depth: number;
  prev_events: string[] | EventReferenceV1[];
  auth_events: string[] | EventReferenceV1[];
  hashes: { sha256: string } & Record<string, string>;
  signatures: Record<string, Record<string, string>>;
  unsigned?: JsonObject;
  /** Top-level on m.room.redaction before v11; in `content` from v11. */
  redacts?: string;
  /** Historical, may be present on old events; not part of newer formats. */
  origin?: string;
  [extra: string]: JsonValue | undefined;
}

/**
 * A PDU whose event ID is known (computed for v3+, carried for v1–v2) and whose
 * room ID is known (derived from the create event for v12). This is the shape
 * authorization and state resolution work on.
 */
export interface RoomEvent extends Pdu {
  event_id: string;
  room_id: string;
}

/** Event IDs of a PDU's `prev_events`, whatever the format. */
export function prevEventIds(pdu: Pick<Pdu, 'prev_events'>): string[] {
  return pdu.prev_events.map((ref) => (typeof ref === 'string' ? ref : ref[0]));
}

/** Event IDs of a PDU's `auth_events`, whatever the format. */
export function authEventIds(pdu: Pick<Pdu, 'auth_events'>): string[] {
  return pdu.auth_events.map((ref) => (typeof ref === 'string' ? ref : ref[0]));
}

/** Key of a state entry: (type, state_key). */
export type StateKey = `${string}\u0000${string}`;
export function stateKey(type: string, key: string): StateKey {
  return `${type}\u0000${key}`;
}

/** A room state: (type, state_key) → event. */
export type StateMap<T = RoomEvent> = Map<StateKey, T>;
