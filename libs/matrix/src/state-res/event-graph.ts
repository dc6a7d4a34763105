import { authEventIds, stateKey, type RoomEvent, type StateKey } from '../events/pdu';
import type { RoomVersion } from '../room-versions';
import { StateResolutionError, type LoadEvents } from './types';

/** Largest number of IDs passed to one `loadEvents` call. */
export const LOAD_BATCH_SIZE = 1000;

export const CREATE_KEY = stateKey('m.room.create', '');
export const POWER_LEVELS_KEY = stateKey('m.room.power_levels', '');

/**
 * The events one resolution works on, with their `auth_events` edges.
 *
 * Every event is loaded at most once and its auth chain walked at most once per
 * resolution: `loadAuthClosure` remembers which events it has already expanded,
 * so the auth chains of all the state events (which overlap almost entirely in
 * a real room) cost one pass over the room's auth graph, fetched level by level
 * in batches.
 */
export class AuthEventGraph {
  private readonly events = new Map<string, RoomEvent>();
  /** IDs already asked of the loader, found or not, so none is asked twice. */
  private readonly requested = new Set<string>();
  /** Events whose auth events have been queued for loading. */
  private readonly expanded = new Set<string>();
  private readonly authIdsMemo = new Map<string, readonly string[]>();
  private readonly powerLevelsMemo = new Map<string, RoomEvent | null>();
  private loaderCalls = 0;

  constructor(
    readonly version: RoomVersion,
    readonly roomId: string,
    private readonly loadEvents: LoadEvents,
    private readonly isRejectedFn: (eventId: string) => boolean = () => false,
  ) {}

  /** Number of `loadEvents` calls made so far (for tests and metrics). */
  get loadCalls(): number {
    return this.loaderCalls;
  }

  add(event: RoomEvent): void {
    if (event.room_id !== this.roomId) {
      throw new StateResolutionError(`event ${event.event_id} is in room ${event.room_id}, not ${this.roomId}`);
    }
    if (!this.events.has(event.event_id)) this.events.set(event.event_id, event);
  }

  get(id: string): RoomEvent | undefined {
    return this.events.get(id);
  }

  has(id: string): boolean {
    return this.events.has(id);
  }

  isRejected(id: string): boolean {
    return this.isRejectedFn(id);
  }

  /** The event's `auth_events` IDs, whatever the PDU format. */
  authIds(id: string): readonly string[] {
    let ids = this.authIdsMemo.get(id);
    if (ids === undefined) {
      const event = this.events.get(id);
      ids = event ? authEventIds(event) : [];
      this.authIdsMemo.set(id, ids);
    }
    return ids;
  }

  /**
   * Loads the given events (if not already known) and their whole auth chains.
   * content/rooms/fragments/v2-state-res.md ("Auth chain"): "the events
   * reachable by walking the graph induced by an event's `auth_events` links".
   * Events the loader does not know are left out, as a server may lack part of
   * an old auth chain; the algorithm then works with what it has.
   */
  async loadAuthClosure(startIds: Iterable<string>): Promise<void> {
    let frontier: string[] = [];
    for (const id of startIds) {
      if (!this.expanded.has(id)) {
        this.expanded.add(id);
        frontier.push(id);
      }
    }
    // Each round goes one level further down the auth graph; a round per level
    // bounds the number of round trips by the depth of the auth graph.
    while (frontier.length > 0) {
      await this.fetchMissing(frontier);
      const next: string[] = [];
      for (const id of frontier) {
        for (const authId of this.authIds(id)) {
          if (!this.expanded.has(authId)) {
            this.expanded.add(authId);
            next.push(authId);
          }
        }
      }
      frontier = next;
    }
  }

  /** Fetches the events not known yet, in batches of at most LOAD_BATCH_SIZE. */
  async fetchMissing(ids: Iterable<string>): Promise<void> {
    const missing: string[] = [];
    for (const id of ids) {
      if (!this.events.has(id) && !this.requested.has(id)) {
        this.requested.add(id);
        missing.push(id);
      }
    }
    for (let i = 0; i < missing.length; i += LOAD_BATCH_SIZE) {
      this.loaderCalls++;
      const found = await this.loadEvents(missing.slice(i, i + LOAD_BATCH_SIZE));
      for (const [id, event] of found) {
        if (event.event_id !== id) throw new StateResolutionError(`loader returned ${event.event_id} for ${id}`);
        this.add(event);
      }
    }
  }

  /**
   * The m.room.create event of the room. From room version 12 it is not in
   * any `auth_events` (content/rooms/v12.md, "Authorisation rules": the
   * `room_id` implies it), so it is found through the room ID.
   */
  createEvent(): RoomEvent | undefined {
    if (this.version.roomIdFromCreateEvent) return this.events.get(createEventIdOf(this.roomId));
    return undefined;
  }

  /**
   * The event's auth events by (type, state_key): the state that the event
   * claims gave its sender permission. For room version 12 the create event
   * implied by the room ID is added. With `skipRejected`, rejected auth events
   * are left out (v2-state-res.md, "Iterative auth checks").
   */
  authEventsByKey(event: RoomEvent, skipRejected: boolean): Map<StateKey, RoomEvent> {
    const byKey = new Map<StateKey, RoomEvent>();
    const create = this.createEvent();
    if (create && create.event_id !== event.event_id) byKey.set(CREATE_KEY, create);
    for (const id of this.authIds(event.event_id)) {
      const authEvent = this.events.get(id);
      if (!authEvent || authEvent.state_key === undefined) continue;
      if (skipRejected && this.isRejectedFn(id)) continue;
      const key = stateKey(authEvent.type, authEvent.state_key);
      // Duplicate keys make the event fail the auth rules; keep the first.
      if (!byKey.has(key)) byKey.set(key, authEvent);
    }
    return byKey;
  }

  /**
   * "the `m.room.power_levels` event in the `auth_events`" of an event, used
   * by the mainline ordering (v2-state-res.md, "Mainline ordering").
   */
  powerLevelsAuthEvent(id: string): RoomEvent | undefined {
    let found = this.powerLevelsMemo.get(id);
    if (found === undefined) {
      found = null;
      for (const authId of this.authIds(id)) {
        const authEvent = this.events.get(authId);
        if (authEvent && authEvent.type === 'm.room.power_levels' && authEvent.state_key === '') {
          found = authEvent;
          break;
        }
      }
      this.powerLevelsMemo.set(id, found);
    }
    return found ?? undefined;
  }
}

/** Room version 12: the room ID is the create event's ID with `!` instead of `$`. */
export function createEventIdOf(roomId: string): string {
  return `$${roomId.slice(1)}`;
}
