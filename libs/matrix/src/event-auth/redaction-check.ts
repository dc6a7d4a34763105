/**
 * Room version 3+: whether a redaction is applied (content/rooms/fragments/
 * v3-handling-redactions.md). The authorization rules accept redactions like
 * any other event; the server applies one, and shows it to clients, only once
 * it holds both events and "one of the following conditions is met:
 * 1. The power level of the redaction event's `sender` is greater than or
 *    equal to the *redact level*.
 * 2. The domain of the redaction event's `sender` matches that of the
 *    original event's `sender`."
 * Room versions 1–2 decide this in the authorization rules instead (rule 11).
 */
import type { RoomEvent } from '../events/pdu';
import type { RoomVersion } from '../room-versions';
import { domainOfId } from '../identifiers';
import { readPowerLevels, userPowerLevel, type AuthStateLookup } from './power-levels';

/**
 * `authState` is the state at the redaction event. Returns true when the
 * redaction should be applied to `redacted` (and false for v1–v2, where
 * authorization already decided and this check does not exist).
 */
export function redactionApplies(
  redaction: RoomEvent,
  redacted: RoomEvent,
  authState: AuthStateLookup,
  version: RoomVersion,
): boolean {
  if (!version.redactionCheckedAtDisplay) return false;
  if (redacted.room_id !== redaction.room_id) return false;
  const redactLevel = readPowerLevels(authState('m.room.power_levels', ''), version).levels.redact;
  if (userPowerLevel(redaction.sender, authState, version) >= redactLevel) return true;
  return domainOfId(redaction.sender) === domainOfId(redacted.sender);
}
