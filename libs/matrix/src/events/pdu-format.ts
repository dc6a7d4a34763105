/**
 * Is a received PDU a valid event of its room version? server-server-api
 * "Checks performed on receipt of a PDU", step 1 ("Is a valid event,
 * otherwise it is dropped"); the formats are those of
 * data/api/server-server/definitions/pdu_v1.yaml (v1–v2), pdu_v3.yaml (v3),
 * pdu_v4.yaml (v4–v11), pdu_v12.yaml (v12), and client-server-api "Size limits".
 */
import { canonicalJsonBytes, CanonicalJsonError } from '../canonical-json';
import { MAX_ID_BYTES } from '../identifiers';
import type { RoomVersion } from '../room-versions';
import type { JsonValue, Pdu } from './pdu';

/** client-server-api "Size limits": the whole event in canonical JSON, signatures included. */
export const MAX_PDU_BYTES = 65_536;
/** client-server-api "Size limits": `type` and `state_key`. */
export const MAX_PDU_FIELD_BYTES = 255;

export type PduFormatCheck = { ok: true; pdu: Pdu } | { ok: false; reason: string };

function isObject(value: JsonValue | undefined | unknown): value is Record<string, JsonValue> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** A reference list: event IDs (v3+), or `[event_id, {sha256}]` pairs (v1–v2). */
function checkRefs(value: unknown, name: string, version: RoomVersion): string | null {
  if (!Array.isArray(value)) return `${name} is not an array`;
  for (const ref of value) {
    if (version.eventIdFormat === 'explicit') {
      if (!Array.isArray(ref) || ref.length !== 2 || typeof ref[0] !== 'string' || !isObject(ref[1]) || typeof ref[1]['sha256'] !== 'string') {
        return `${name} entries must be [event_id, {sha256}] in room version ${version.id}`;
      }
    } else if (typeof ref !== 'string' || !ref.startsWith('$') || bytes(ref) > MAX_ID_BYTES) {
      return `${name} entries must be event IDs in room version ${version.id}`;
    }
  }
  return null;
}

/**
 * Checks the shape of a received PDU for `version`: the required keys and
 * their types, the reference format, the size limits, and (v6+) that it is
 * valid canonical JSON. Fields the format does not know are allowed (they
 * are hashed and signed like any other). Returns the PDU typed on success.
 */
export function checkPduFormat(value: unknown, version: RoomVersion): PduFormatCheck {
  const fail = (reason: string): PduFormatCheck => ({ ok: false, reason });
  if (!isObject(value)) return fail('a PDU must be a JSON object');
  const p = value;
  if (typeof p['type'] !== 'string') return fail('type must be a string');
  if (bytes(p['type']) > MAX_PDU_FIELD_BYTES) return fail(`type is longer than ${MAX_PDU_FIELD_BYTES} bytes`);
  if (p['state_key'] !== undefined) {
    if (typeof p['state_key'] !== 'string') return fail('state_key must be a string');
    if (bytes(p['state_key']) > MAX_PDU_FIELD_BYTES) return fail(`state_key is longer than ${MAX_PDU_FIELD_BYTES} bytes`);
  }
  if (typeof p['sender'] !== 'string' || !p['sender'].startsWith('@') || !p['sender'].includes(':')) return fail('sender must be a user ID');
  if (bytes(p['sender']) > MAX_ID_BYTES) return fail('sender is too long');
  // v12: the create event has no room_id ("the room ID is the event ID of the create event").
  const createV12 = version.roomIdFromCreateEvent && p['type'] === 'm.room.create';
  if (createV12) {
    if (p['room_id'] !== undefined) return fail(`an m.room.create event of room version ${version.id} has no room_id`);
  } else if (typeof p['room_id'] !== 'string' || !p['room_id'].startsWith('!') || bytes(p['room_id']) > MAX_ID_BYTES) {
    return fail('room_id must be a room ID');
  }
  if (version.eventIdFormat === 'explicit') {
    if (typeof p['event_id'] !== 'string' || !p['event_id'].startsWith('$') || !p['event_id'].includes(':') || bytes(p['event_id']) > MAX_ID_BYTES) {
      return fail(`room version ${version.id} events carry an event_id of the form $opaque:server`);
    }
  }
  if (!isObject(p['content'])) return fail('content must be an object');
  if (!isInt(p['origin_server_ts'])) return fail('origin_server_ts must be an integer');
  if (!isInt(p['depth']) || p['depth'] < 0) return fail('depth must be a non-negative integer');
  const prev = checkRefs(p['prev_events'], 'prev_events', version);
  if (prev) return fail(prev);
  const auth = checkRefs(p['auth_events'], 'auth_events', version);
  if (auth) return fail(auth);
  if (!isObject(p['hashes']) || typeof p['hashes']['sha256'] !== 'string') return fail('hashes.sha256 must be a string');
  if (!isObject(p['signatures'])) return fail('signatures must be an object');
  for (const byServer of Object.values(p['signatures'])) {
    if (!isObject(byServer) || Object.values(byServer).some((s) => typeof s !== 'string')) return fail('signatures must map servers to key IDs to strings');
  }
  if (p['unsigned'] !== undefined && !isObject(p['unsigned'])) return fail('unsigned must be an object');
  // m.room.redaction before v11: `redacts` at the top level (pdu_v1..pdu_v4).
  if (p['type'] === 'm.room.redaction' && !version.redactsInContent && typeof p['redacts'] !== 'string') return fail('an m.room.redaction event needs redacts');
  let size: number;
  try {
    size = canonicalJsonBytes(p, { strict: version.strictCanonicalJson }).length;
  } catch (err) {
    if (err instanceof CanonicalJsonError) return fail(`not canonical JSON for room version ${version.id}: ${err.message}`);
    throw err;
  }
  if (size > MAX_PDU_BYTES) return fail(`the event is larger than ${MAX_PDU_BYTES} bytes`);
  return { ok: true, pdu: p as unknown as Pdu };
}
