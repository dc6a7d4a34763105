import type { RoomEvent, StateMap } from '../events/pdu';
import type { RoomVersion } from '../room-versions';

/**
 * Fetches events by ID. Used for the auth events of the events in the state
 * sets and, recursively, their auth chains. It is called with batches of IDs
 * (never the same ID twice in one resolution); IDs it does not know are simply
 * left out of the returned map. Events from another room are refused.
 */
export type LoadEvents = (ids: string[]) => Promise<Map<string, RoomEvent>>;

/**
 * Input of {@link resolveState}.
 *
 * The state sets carry the events themselves (callers already hold them when
 * they compute the state after each prev event); everything else the algorithm
 * needs — the auth events and their chains — comes through `loadEvents`, so
 * storage stays outside this library (ARCHITECTURE.md, libs/matrix).
 */
export interface StateResInput {
  version: RoomVersion;
  /** The states {S1, S2, …} after each prev event: (type, state_key) → event. */
  stateSets: StateMap[];
  loadEvents: LoadEvents;
  /**
   * Whether an event was rejected (failed the checks on receipt of a PDU).
   * content/rooms/fragments/v2-state-res.md ("Rejected events"): rejected
   * auth events are not used in the iterative auth checks. Defaults to "none
   * rejected".
   */
  isRejected?: (eventId: string) => boolean;
}

/** Thrown when the input cannot be resolved (events from another room, a missing event in a state set). */
export class StateResolutionError extends Error {
  override readonly name = 'StateResolutionError';
}
