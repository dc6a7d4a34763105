/**
 * Building a PDU in the wire format of its room version.
 * Spec: data/api/server-server/definitions/pdu_v1.yaml (v1–v2: `event_id`,
 * `[event_id, {sha256}]` references), pdu_v3.yaml / pdu_v4.yaml (v3+: string
 * references, no `event_id`), pdu_v11.yaml (`redacts` in `content`,
 * content/rooms/v11.md), pdu_v12.yaml and content/rooms/v12.md (the create
 * event has no `room_id`).
 */
import { randomBytes } from 'node:crypto';
import { domainOfId } from '../identifiers';
import { resolveRoomVersion, type RoomVersionInput } from './event-hashes';
import type { UnsignedPdu } from './event-signing';
import type { EventReferenceV1, JsonObject, Pdu } from './pdu';

/**
 * A reference to another event: its ID (enough from room version 3), or its ID
 * with the reference hash in unpadded Base64 (needed for v1–v2; see
 * eventReference()).
 */
export type EventRefInput = string | { event_id: string; sha256: string } | EventReferenceV1;

/**
 * The fields a caller gives buildPdu: the PDU's own fields (see Pdu), with
 * references in any accepted form; `event_id` (v1–v2 only) is generated as
 * `$<random>:<sender's server>` when absent, and `room_id` is absent only on
 * the m.room.create event of room version 12.
 */
export type PduFields = Pick<Pdu, 'room_id' | 'sender' | 'type' | 'state_key' | 'content' | 'origin_server_ts' | 'depth' | 'redacts' | 'event_id' | 'unsigned'> & {
  prev_events: readonly EventRefInput[];
  auth_events: readonly EventRefInput[];
};

const ALPHANUMERIC = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';

function randomLocalpart(length: number): string {
  let out = '';
  for (const byte of randomBytes(length)) out += ALPHANUMERIC[byte % ALPHANUMERIC.length];
  return out;
}

function refId(ref: EventRefInput): string {
  if (typeof ref === 'string') return ref;
  return Array.isArray(ref) ? ref[0] : ref.event_id;
}

function refV1(ref: EventRefInput): EventReferenceV1 {
  if (typeof ref === 'string') {
    throw new Error(`room versions 1 and 2 reference events with their hash; ${ref} came without one`);
  }
  if (Array.isArray(ref)) return [ref[0], { sha256: ref[1].sha256 }];
  return [ref.event_id, { sha256: ref.sha256 }];
}

/**
 * The PDU for `fields` in `version`'s format, without `hashes` and
 * `signatures` (signPdu adds them). Throws when the fields cannot make a valid
 * PDU of that version (an `event_id` given for v3+, a room_id on a v12 create
 * event, none on another event, a v1–v2 reference without its hash).
 */
export function buildPdu(fields: PduFields, version: RoomVersionInput): UnsignedPdu {
  const v = resolveRoomVersion(version);
  const explicit = v.eventIdFormat === 'explicit';
  const isCreate = fields.type === 'm.room.create';
  if (v.roomIdFromCreateEvent && isCreate) {
    if (fields.room_id !== undefined) throw new Error(`a room version ${v.id} m.room.create event has no room_id`);
  } else if (fields.room_id === undefined) {
    throw new Error('room_id is required');
  }
  if (!explicit && fields.event_id !== undefined) {
    throw new Error(`room version ${v.id} event IDs are computed from the event, not carried`);
  }

  const content: JsonObject = { ...fields.content };
  if (fields.redacts !== undefined && v.redactsInContent && content['redacts'] === undefined) content['redacts'] = fields.redacts;

  const pdu: UnsignedPdu = {
    sender: fields.sender,
    type: fields.type,
    content,
    origin_server_ts: fields.origin_server_ts,
    depth: fields.depth,
    prev_events: explicit ? fields.prev_events.map(refV1) : fields.prev_events.map(refId),
    auth_events: explicit ? fields.auth_events.map(refV1) : fields.auth_events.map(refId),
  };
  if (fields.room_id !== undefined) pdu.room_id = fields.room_id;
  if (fields.state_key !== undefined) pdu.state_key = fields.state_key;
  if (fields.redacts !== undefined && !v.redactsInContent) pdu.redacts = fields.redacts;
  if (fields.unsigned !== undefined) pdu.unsigned = fields.unsigned;
  if (explicit) {
    const server = domainOfId(fields.sender);
    if (fields.event_id === undefined && server === undefined) throw new Error(`sender ${fields.sender} has no server name`);
    pdu.event_id = fields.event_id ?? `$${randomLocalpart(18)}:${server}`;
  }
  return pdu;
}
