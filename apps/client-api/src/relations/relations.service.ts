import { Inject, Injectable, Optional } from '@nestjs/common';
import { Errors, type Requester } from '@atrium/http';
import { bundleAggregations } from '@atrium/relations';
import { canSeeEvent, eventOf, ROOM_STORE, toClientEvent, type EventRecord, type MembershipRecord, type RoomStore } from '@atrium/rooms';
import { UserDataStores } from '../user/user-data.stores';

type Json = Record<string, unknown>;

/**
 * What /relations, /threads and /search share: who may read a room, which
 * events a user may see, and events formatted with their bundled
 * aggregations (client-server-api "Aggregations of child events").
 */
@Injectable()
export class RelationsService {
  constructor(
    @Inject(ROOM_STORE) readonly rooms: RoomStore,
    @Optional() private readonly userData?: UserDataStores,
  ) {}

  /**
   * Users the requester ignores (m.ignored_user_list account data, "Ignoring
   * users"): their child events are not aggregated.
   */
  async ignoredUsers(userId: string): Promise<Set<string>> {
    if (!this.userData) return new Set();
    const content = await this.userData.accountData.get(userId, null, 'm.ignored_user_list');
    const ignored = content?.['ignored_users'];
    return new Set(ignored && typeof ignored === 'object' && !Array.isArray(ignored) ? Object.keys(ignored) : []);
  }

  /**
   * A reader of a room's history: a user with any membership but knock (the
   * per-event history visibility rules then decide), or anyone while the
   * room is world_readable; else 403 M_FORBIDDEN (threads_list.yaml: "The
   * user cannot view or peek on the room"), also for unknown rooms.
   */
  async requireReader(roomId: string, userId: string): Promise<MembershipRecord | null> {
    const membership = await this.rooms.getMembership(roomId, userId);
    if (membership && membership.membership !== 'knock') return membership;
    const visibility = await this.rooms.currentStateEvent(roomId, 'm.room.history_visibility', '');
    if (visibility && eventOf(visibility).content['history_visibility'] === 'world_readable') return membership;
    throw Errors.forbidden('You are not allowed to view this room');
  }

  /** The events of `records` the user may see (history visibility, one check per event). */
  async visible(userId: string, records: EventRecord[]): Promise<EventRecord[]> {
    const canSee = this.visibilityChecker(userId);
    const out: EventRecord[] = [];
    for (const record of records) if (await canSee(record)) out.push(record);
    return out;
  }

  /**
   * A history visibility check for many events of one user: an event at or
   * after the position of the user's current join is visible without reading
   * the room state (they have been joined since: "the user's membership was
   * join"); older ones go through libs/rooms canSeeEvent.
   */
  visibilityChecker(userId: string): (record: EventRecord) => Promise<boolean> {
    const joinedSince = new Map<string, Promise<number>>();
    return async (record) => {
      let since = joinedSince.get(record.room_id);
      if (!since) {
        since = this.rooms.getMembership(record.room_id, userId).then((m) => (m?.membership === 'join' ? m.stream : Number.POSITIVE_INFINITY));
        joinedSince.set(record.room_id, since);
      }
      if (record.stream >= (await since)) return true;
      return canSeeEvent(this.rooms, userId, record);
    };
  }

  /** ClientEvents (with room_id) carrying their bundled aggregations. */
  async format(records: EventRecord[], requester: Requester): Promise<Json[]> {
    const now = Date.now();
    const events = records.map((r) => toClientEvent(r, { now, requester }) as unknown as Json);
    return bundleAggregations(this.rooms, events, records, { userId: requester.userId, now, ignoredUsers: await this.ignoredUsers(requester.userId) });
  }
}
