/**
 * State resolution for room version 1.
 *
 * Spec: content/rooms/v1.md ("State resolution"). This algorithm is known to
 * reset state (the spec's own warning); it is kept exactly for the rooms that
 * still use it. It needs no auth chains: every check is made against the
 * state being resolved, R.
 */
import { createHash } from 'node:crypto';
import { authorizeEvent } from '../event-auth';
import { stateKey, type RoomEvent, type StateKey, type StateMap } from '../events/pdu';
import type { RoomVersion } from '../room-versions';
import type { StateResInput } from './types';

export async function resolveStateV1(input: StateResInput): Promise<StateMap> {
  const { version, stateSets } = input;

  // "Start by setting R to the union of the states to be resolved, excluding
  // any conflicting events." — "A conflict occurs between states where those
  // states have different event_ids for the same (event_type, state_key)";
  // a key that only some states have is not a conflict.
  const resolved: StateMap = new Map();
  const conflicts = new Map<StateKey, RoomEvent[]>();
  for (const stateSet of stateSets) {
    for (const [key, event] of stateSet) {
      const conflicting = conflicts.get(key);
      if (conflicting) {
        if (!conflicting.some((e) => e.event_id === event.event_id)) conflicting.push(event);
        continue;
      }
      const existing = resolved.get(key);
      if (existing === undefined) resolved.set(key, event);
      else if (existing.event_id !== event.event_id) {
        resolved.delete(key);
        conflicts.set(key, [existing, event]);
      }
    }
  }
  if (conflicts.size === 0) return resolved;

  // "First we resolve conflicts between m.room.power_levels events. [...]
  // Repeat the above process for conflicts between m.room.join_rules events.
  // Repeat the above process for conflicts between m.room.member events."
  // Each conflicted key of a stage is resolved against R as it stood when the
  // stage began (members do not see each other's outcome), which keeps the
  // result independent of the order of the keys; R is updated after the stage.
  for (const type of ['m.room.power_levels', 'm.room.join_rules', 'm.room.member']) {
    const winners: Array<[StateKey, RoomEvent]> = [];
    for (const [key, events] of conflicts) {
      if (events[0].type === type) winners.push([key, resolveAuthConflict(key, events, resolved, version)]);
    }
    for (const [key, winner] of winners) {
      resolved.set(key, winner);
      conflicts.delete(key);
    }
  }

  // "No other events affect the authorisation rules, so for all other
  // conflicts, just pick the event with the highest depth and lowest
  // sha1(event_id) that passes authentication in R and add it to R."
  const winners: Array<[StateKey, RoomEvent]> = [];
  for (const [key, events] of conflicts) {
    const candidates = [...events].sort(byDepthDescThenSha1Asc);
    let winner = candidates.find((event) => allowedIn(event, resolved, version));
    // The spec does not say what happens when none passes; like Synapse, keep
    // the last candidate (lowest depth) so that the key does not vanish.
    winner ??= candidates[candidates.length - 1];
    winners.push([key, winner]);
  }
  for (const [key, winner] of winners) resolved.set(key, winner);
  return resolved;
}

/**
 * "Assemble all the [events of this key] from the states to be resolved into
 * a list. Sort the list by ascending depth then descending sha1(event_id).
 * Add the first event in the list to R. For each subsequent event in the
 * list, check that the event would be allowed by the authorisation rules for
 * a room in state R. If the event would be allowed, then update R with the
 * event and continue with the next event in the list. If it would not be
 * allowed, stop".
 */
function resolveAuthConflict(key: StateKey, events: RoomEvent[], base: StateMap, version: RoomVersion): RoomEvent {
  const candidates = [...events].sort((a, b) => byDepthDescThenSha1Asc(b, a));
  const state: StateMap = new Map(base);
  let winner = candidates[0];
  state.set(key, winner);
  for (const event of candidates.slice(1)) {
    if (!allowedIn(event, state, version)) break;
    winner = event;
    state.set(key, event);
  }
  return winner;
}

function allowedIn(event: RoomEvent, state: StateMap, version: RoomVersion): boolean {
  return authorizeEvent(event, (type, key) => state.get(stateKey(type, key)), version).allowed;
}

function sha1Hex(eventId: string): string {
  return createHash('sha1').update(eventId, 'utf8').digest('hex');
}

/** Highest depth first, then lowest sha1(event_id) (hex digests compare like the bytes). */
function byDepthDescThenSha1Asc(a: RoomEvent, b: RoomEvent): number {
  if (a.depth !== b.depth) return b.depth - a.depth;
  const ha = sha1Hex(a.event_id);
  const hb = sha1Hex(b.event_id);
  return ha < hb ? -1 : ha > hb ? 1 : 0;
}
