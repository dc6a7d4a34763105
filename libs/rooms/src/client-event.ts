import type { JsonObject, JsonValue } from '@atrium/matrix';
import { eventOf, unsignedOf, type EventRecord } from './room-store';

/**
 * The ClientEvent format (data/api/client-server/definitions/client_event.yaml
 * and client_event_without_room_id.yaml): what /rooms/…/event, /state,
 * /messages and /sync return. Federation-only fields (auth_events,
 * prev_events, hashes, signatures, depth) are left out.
 */
export interface ClientEvent {
  content: JsonObject;
  event_id: string;
  origin_server_ts: number;
  room_id?: string;
  sender: string;
  state_key?: string;
  type: string;
  /** Top-level before room version 11, kept for clients that read it there. */
  redacts?: string;
  unsigned: JsonObject;
}

export interface ClientEventOptions {
  /** Current time, for `unsigned.age`. */
  now?: number;
  /**
   * The requester: `unsigned.transaction_id` is given only "if the client
   * being given the event is the same one which sent it".
   */
  requester?: { userId: string; deviceId: string };
  /** Leave out room_id (ClientEventWithoutRoomID, as /sync uses). */
  omitRoomId?: boolean;
}

export function toClientEvent(record: EventRecord, options: ClientEventOptions = {}): ClientEvent {
  const event = eventOf(record);
  const now = options.now ?? Date.now();
  const out: ClientEvent = {
    content: event.content ?? {},
    event_id: event.event_id,
    origin_server_ts: event.origin_server_ts,
    sender: event.sender,
    type: event.type,
    unsigned: {},
  };
  if (!options.omitRoomId) out.room_id = event.room_id;
  if (event.state_key !== undefined) out.state_key = event.state_key;
  // m.room.redaction: `redacts` is top-level in v1–v10 PDUs and in content from v11;
  // the ClientEvent example shows it top-level, so it is given there whenever known.
  const redacts = record.redacts;
  if (redacts !== null) out.redacts = redacts;

  const unsigned: Record<string, JsonValue> = { ...unsignedOf(record) };
  unsigned['age'] = now - event.origin_server_ts;
  if (options.requester && record.txn_id !== null && record.sender === options.requester.userId && record.device_id === options.requester.deviceId) {
    unsigned['transaction_id'] = record.txn_id;
  }
  if (record.redacted && unsigned['redacted_because'] && typeof unsigned['redacted_because'] === 'object') {
    // The age of the redaction event is computed now as well.
    const because = { ...(unsigned['redacted_because'] as JsonObject) };
    if (typeof because['origin_server_ts'] === 'number') {
      because['unsigned'] = { ...((because['unsigned'] as JsonObject | undefined) ?? {}), age: now - because['origin_server_ts'] };
    }
    unsigned['redacted_because'] = because;
  }
  out.unsigned = unsigned;
  return out;
}
