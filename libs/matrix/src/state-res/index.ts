/**
 * State resolution: v1 (room version 1), v2 (room versions 2–11) and v2.1
 * (room version 12), chosen by `RoomVersion.stateResolution`.
 *
 * Spec: content/rooms/v1.md ("State resolution"),
 * content/rooms/fragments/v2-state-res.md, content/rooms/v12.md ("State
 * resolution").
 */
import type { StateMap } from '../events/pdu';
import type { StateResInput } from './types';
import { resolveStateV1 } from './v1';
import { roomIdOf } from './definitions';
import { resolveStateV2 } from './v2';

export type { LoadEvents, StateResInput } from './types';
export { StateResolutionError } from './types';
export { isPowerEvent } from './definitions';

/**
 * Resolves a set of room states {S1, S2, …} (the states after each prev event
 * of a new event) into the state before that event.
 *
 * `stateSets` carry events; the auth events needed on the way are fetched
 * through `loadEvents`, in batches, each at most once per call. With no state
 * set the result is empty; with one it is that state (copied); when the sets
 * agree on every key nothing is loaded. Throws StateResolutionError when the
 * sets (or loaded events) belong to different rooms.
 */
export async function resolveState(input: StateResInput): Promise<StateMap> {
  const { stateSets } = input;
  roomIdOf(stateSets);
  if (stateSets.length === 0) return new Map();
  if (stateSets.length === 1) return new Map(stateSets[0]);
  switch (input.version.stateResolution) {
    case 'v1':
      return resolveStateV1(input);
    case 'v2':
    case 'v2.1':
      return resolveStateV2(input);
  }
}
