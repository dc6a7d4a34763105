/**
 * The checks on receipt of a PDU that need no room state: steps 1 to 3 of
 * server-server-api "Checks performed on receipt of a PDU" (format,
 * signatures, content hash). They run before the room's writer is taken, so
 * key fetches never hold a room.
 */
import { remoteKeyId, type KeyRing } from '@atrium/federation-client';
import {
  checkPduFormat,
  checkPduHashesAndSignatures,
  requiredSigners,
  toRoomEvent,
  type Pdu,
  type PduFormatCheck,
  type VerifyKeyLookup,
  type RoomEvent,
  type RoomVersion,
} from '@atrium/matrix';

/** A PDU after steps 1–3. */
export type VerifiedPdu =
  /** Valid and signed; `redacted` when the content hash did not match (step 3: "redacted before being processed further"). */
  | { ok: true; event: RoomEvent; redacted: boolean }
  /** Dropped at step 1 or 2; `eventId` when it could be computed (the /send result is keyed by it). */
  | { ok: false; eventId?: string; reason: string };

function eventIdOf(pdu: Pdu, version: RoomVersion): string | undefined {
  try {
    return toRoomEvent(pdu, version).event_id;
  } catch {
    return undefined;
  }
}

/**
 * Checks a batch of PDUs of one room version: one KeyRing call for every key
 * the batch needs (keys of a transaction's PDUs are mostly the same few).
 * `roomId`, when given, is the room the PDUs must belong to.
 */
export async function verifyPdus(pdus: readonly unknown[], version: RoomVersion, keyRing: KeyRing, roomId?: string): Promise<VerifiedPdu[]> {
  // Untrusted input: whatever one PDU makes a check throw drops that PDU, never the batch.
  const formatted = pdus.map((raw): PduFormatCheck => {
    try {
      return checkPduFormat(raw, version);
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  });
  const requests: Array<{ serverName: string; keyIds: string[]; atTs?: number }> = [];
  for (const check of formatted) {
    if (!check.ok) continue;
    for (const server of requiredSigners(check.pdu, version)) {
      const keyIds = Object.keys(check.pdu.signatures[server] ?? {}).filter((k) => k.startsWith('ed25519:'));
      // Rooms v5+: the key must be valid at the event's origin_server_ts (v5-signing-requirements.md).
      if (keyIds.length > 0) requests.push({ serverName: server, keyIds, atTs: version.enforceKeyValidity ? check.pdu.origin_server_ts : undefined });
    }
  }
  const keys = requests.length > 0 ? await keyRing.getVerifyKeys(requests) : new Map();
  const lookup = (server: string, keyId: string) => keys.get(remoteKeyId(server, keyId));
  return formatted.map((check): VerifiedPdu => {
    try {
      return verifyOne(check, version, lookup, roomId);
    } catch (err) {
      return { ok: false, reason: `invalid event: ${(err as Error).message}` };
    }
  });
}

function verifyOne(check: PduFormatCheck, version: RoomVersion, lookup: VerifyKeyLookup, roomId: string | undefined): VerifiedPdu {
  if (!check.ok) {
    const raw = check as { ok: false; reason: string };
    return { ok: false, reason: `invalid event: ${raw.reason}` };
  }
  const pdu = check.pdu;
  const eventId = eventIdOf(pdu, version);
  if (eventId === undefined) return { ok: false, reason: 'invalid event: no event ID can be computed' };
  let event: RoomEvent;
  try {
    event = toRoomEvent(pdu, version);
  } catch (err) {
    return { ok: false, eventId, reason: `invalid event: ${(err as Error).message}` };
  }
  if (roomId !== undefined && event.room_id !== roomId) return { ok: false, eventId, reason: `event belongs to ${event.room_id}, not ${roomId}` };
  const checked = checkPduHashesAndSignatures(event, version, lookup);
  if (checked.outcome === 'reject') {
    const s = checked.signatures;
    return { ok: false, eventId, reason: `signature check failed for ${s.serverName}: ${s.reason}${s.keyId ? ` (${s.keyId})` : ''}` };
  }
  // The remote's `unsigned` is neither hashed nor signed: this server computes its own.
  const kept: RoomEvent = { ...checked.event };
  delete kept.unsigned;
  return { ok: true, event: kept, redacted: checked.outcome === 'redact' };
}
