/**
 * Content hash, reference hash, event IDs and v12 room IDs.
 * Spec: content/server-server-api.md "Calculating the content hash for an
 * event", "Calculating the reference hash for an event"; event ID formats in
 * content/rooms/fragments/v1-event-ids.md (v1–v2: carried), content/rooms/v3.md
 * "Event IDs" (standard unpadded Base64), rooms/fragments/v4-event-ids.md (v4+:
 * URL-safe unpadded Base64); room IDs in content/rooms/v12.md and
 * appendices.md "Room IDs" (v12: the create event's ID with `!` for `$`).
 */
import { createHash } from 'node:crypto';
import { encodeBase64, encodeBase64Url, tryDecodeBase64 } from '../base64';
import { canonicalJsonBytes } from '../canonical-json';
import { redactEvent } from '../redaction/redact';
import { getRoomVersion, type RoomVersion, type RoomVersionId } from '../room-versions';
import type { Pdu, RoomEvent } from './pdu';

/** A room version given as descriptor or as its identifier. */
export type RoomVersionInput = RoomVersion | RoomVersionId;

export function resolveRoomVersion(version: RoomVersionInput): RoomVersion {
  if (typeof version !== 'string') return version;
  const found = getRoomVersion(version);
  if (!found) throw new Error(`unknown room version ${version}`);
  return found;
}

/** The PDU-like input these functions take: a wire PDU, or a RoomEvent made from one. */
export type PduLike = Pdu | RoomEvent;

/**
 * The fields that are not part of the PDU as the room version defines it,
 * and so must not be hashed or signed:
 * - v3+: `event_id` ("When events are sent over federation, the `event_id`
 *   field is no longer included", content/rooms/v3.md); toRoomEvent adds it.
 * - v12 create: a `room_id` equal to the one derived from the event ID, which
 *   toRoomEvent adds. A create PDU that came with some other `room_id` keeps
 *   it, so its hash is the one its sender computed and auth rule 1.2 sees it.
 */
function isLocalField(key: string, pdu: PduLike, version: RoomVersion): boolean {
  if (key === 'event_id') return version.eventIdFormat !== 'explicit';
  if (key === 'room_id') {
    return (
      version.roomIdFromCreateEvent &&
      pdu.type === 'm.room.create' &&
      typeof pdu.event_id === 'string' &&
      pdu.room_id === `!${pdu.event_id.slice(1)}`
    );
  }
  return false;
}

/** A shallow copy of `pdu` without `drop` keys and without the local fields above. */
function withoutKeys(pdu: PduLike, version: RoomVersion, drop: ReadonlySet<string>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const source = pdu as unknown as Record<string, unknown>;
  for (const key of Object.keys(source)) {
    if (drop.has(key) || isLocalField(key, pdu, version)) continue;
    out[key] = source[key];
  }
  return out;
}

const NO_KEYS: ReadonlySet<string> = new Set();
const CONTENT_HASH_DROPS: ReadonlySet<string> = new Set(['unsigned', 'signatures', 'hashes']);
const REFERENCE_HASH_DROPS: ReadonlySet<string> = new Set(['unsigned', 'signatures']);

/** The PDU as it goes over federation: toRoomEvent's additions removed. */
export function toWirePdu(event: PduLike, version: RoomVersionInput): Pdu {
  return withoutKeys(event, resolveRoomVersion(version), NO_KEYS) as unknown as Pdu;
}

/**
 * The SHA-256 content hash: "any existing `unsigned`, `signatures`, and
 * `hashes` properties are removed", then canonical JSON. Throws
 * CanonicalJsonError for a v6+ event whose numbers break the canonical rules.
 */
export function contentHash(pdu: PduLike, version: RoomVersionInput): Buffer {
  const v = resolveRoomVersion(version);
  const bytes = canonicalJsonBytes(withoutKeys(pdu, v, CONTENT_HASH_DROPS), { strict: v.strictCanonicalJson });
  return createHash('sha256').update(bytes).digest();
}

/** The content hash in unpadded Base64, as stored in `hashes.sha256`. */
export function contentHashBase64(pdu: PduLike, version: RoomVersionInput): string {
  return encodeBase64(contentHash(pdu, version));
}

/** Whether `hashes.sha256` matches the event's content hash. */
export function checkContentHash(pdu: PduLike, version: RoomVersionInput): boolean {
  const hashes: unknown = pdu.hashes;
  if (typeof hashes !== 'object' || hashes === null) return false;
  const claimed = (hashes as Record<string, unknown>)['sha256'];
  if (typeof claimed !== 'string') return false;
  const decoded = tryDecodeBase64(claimed);
  return decoded !== undefined && decoded.equals(contentHash(pdu, version));
}

/**
 * The redacted form used for the reference hash and for signatures: the
 * event "put through the redaction algorithm", local fields removed.
 */
export function redactedForHashing(pdu: PduLike, version: RoomVersionInput): Record<string, unknown> {
  const v = resolveRoomVersion(version);
  return redactEvent(withoutKeys(pdu, v, NO_KEYS), v);
}

/**
 * The SHA-256 reference hash: redact, remove `signatures` and `unsigned`,
 * canonical JSON, hash.
 */
export function referenceHash(pdu: PduLike, version: RoomVersionInput): Buffer {
  const v = resolveRoomVersion(version);
  const redacted = redactEvent(withoutKeys(pdu, v, REFERENCE_HASH_DROPS), v);
  return createHash('sha256').update(canonicalJsonBytes(redacted, { strict: v.strictCanonicalJson })).digest();
}

/**
 * The event's ID: carried in `event_id` for v1–v2 (throws if absent), else
 * `$` + reference hash in standard (v3) or URL-safe (v4+) unpadded Base64.
 */
export function computeEventId(pdu: PduLike, version: RoomVersionInput): string {
  const v = resolveRoomVersion(version);
  switch (v.eventIdFormat) {
    case 'explicit':
      if (typeof pdu.event_id !== 'string') throw new Error(`room version ${v.id} events carry their event_id, and this one has none`);
      return pdu.event_id;
    case 'hash-base64':
      return `$${encodeBase64(referenceHash(pdu, v))}`;
    case 'hash-urlsafe':
      return `$${encodeBase64Url(referenceHash(pdu, v))}`;
  }
}

/**
 * v12: the room ID of the room a create event makes, "the event ID of the
 * `m.room.create` event using `!` as the sigil instead of `$`".
 */
export function roomIdFromCreateEvent(createPdu: PduLike, version: RoomVersionInput = '12'): string {
  const v = resolveRoomVersion(version);
  if (!v.roomIdFromCreateEvent) throw new Error(`room version ${v.id} room IDs are not derived from the create event`);
  return `!${computeEventId(createPdu, v).slice(1)}`;
}

/**
 * The RoomEvent for a PDU: `event_id` computed (v3+) or carried (v1–v2), and
 * for a v12 create event without `room_id`, the derived room ID. Other fields
 * are copied as they are. Throws if a room ID cannot be found (a non-create
 * PDU without `room_id`).
 */
export function toRoomEvent(pdu: PduLike, version: RoomVersionInput): RoomEvent {
  const v = resolveRoomVersion(version);
  const eventId = computeEventId(pdu, v);
  let roomId = pdu.room_id;
  if (roomId === undefined && v.roomIdFromCreateEvent && pdu.type === 'm.room.create') roomId = `!${eventId.slice(1)}`;
  if (typeof roomId !== 'string') throw new Error(`event ${eventId} has no room_id`);
  return { ...pdu, event_id: eventId, room_id: roomId };
}

/** A v1–v2 reference to `event`: `[event_id, { sha256: reference hash }]`. */
export function eventReference(event: PduLike, version: RoomVersionInput): [string, { sha256: string }] {
  return [computeEventId(event, version), { sha256: encodeBase64(referenceHash(event, version)) }];
}
