import { Injectable } from '@nestjs/common';
import { eventMatchesFilter } from '@atrium/matrix';
import type { SyncSection, SyncSectionRequest, SyncSectionResult } from '../sync/sync-sections';
import { UserDataStores } from './user-data.stores';

/**
 * The /sync sections of the user-data streams (design doc "Sync sections"),
 * registered in sync/sync-section-list.ts.
 */

/** A top-level `{ [key]: { events } }`: given when there are events, and (empty) on an initial sync. */
function topEvents(request: SyncSectionRequest, key: string, events: readonly unknown[]): Record<string, unknown> {
  return events.length > 0 || request.initial ? { [key]: { events } } : {};
}

/**
 * Top-level `account_data` (global account data, filtered by
 * `filter.account_data`) and each joined room's `account_data` (filtered by
 * `filter.room.account_data`): "The client receives the account data as
 * events in the `account_data` sections of a /sync response".
 */
@Injectable()
export class AccountDataSyncSection implements SyncSection {
  readonly stream = 'account_data' as const;

  constructor(private readonly stores: UserDataStores) {}

  currentPosition(): Promise<number> {
    return this.stores.accountData.safePosition();
  }

  async build(request: SyncSectionRequest): Promise<SyncSectionResult> {
    const from = request.fullState ? 0 : request.from.account_data;
    const changes = await this.stores.accountData.changes(request.userId, from, request.to.account_data);
    const events = changes.global.filter((e) => eventMatchesFilter(request.filter.account_data, e));
    const joined = new Set(request.joinedRoomIds);
    const roomFilter = request.filter.room?.account_data;
    const rooms: Record<string, Record<string, unknown>> = {};
    for (const [roomId, roomEvents] of Object.entries(changes.rooms)) {
      if (!joined.has(roomId)) continue;
      const kept = roomEvents.filter((e) => eventMatchesFilter(roomFilter, { ...e, room_id: roomId }));
      if (kept.length > 0) rooms[roomId] = { account_data: { events: kept } };
    }
    const hasUpdates = events.length > 0 || Object.keys(rooms).length > 0;
    return { top: topEvents(request, 'account_data', events), rooms, hasUpdates };
  }
}

/**
 * Top-level `presence`: `m.presence` events of the user and of users sharing
 * a joined room ("Presence events are sent to interested parties where users
 * share a room membership"), with their display name and avatar.
 */
@Injectable()
export class PresenceSyncSection implements SyncSection {
  readonly stream = 'presence' as const;

  constructor(private readonly stores: UserDataStores) {}

  currentPosition(): Promise<number> {
    return this.stores.presence.safePosition();
  }

  async build(request: SyncSectionRequest): Promise<SyncSectionResult> {
    // sync.yaml `set_presence`: "If this parameter is omitted then the client is automatically marked as
    // online when it uses this API"; `offline` leaves presence as it is. The write lands after `to`, so the
    // user's own change shows in the next response.
    const setPresence = request.setPresence ?? 'online';
    if (setPresence !== 'offline') {
      await this.stores.presence.syncActivity(request.userId, setPresence, () => this.stores.presenceAudience(request.userId));
    }
    const users = new Set<string>([request.userId]);
    for (const roomId of request.joinedRoomIds) for (const member of await this.stores.rooms.joinedUsers(roomId)) users.add(member);
    const from = request.fullState ? 0 : request.from.presence;
    const changes = await this.stores.presence.changes([...users], from, request.to.presence);
    const events: Array<{ type: 'm.presence'; sender: string; content: Record<string, unknown> }> = [];
    for (const { userId, content } of changes) {
      const event = { type: 'm.presence' as const, sender: userId, content: { ...content } as Record<string, unknown> };
      if (!eventMatchesFilter(request.filter.presence, event)) continue;
      const profile = await this.stores.profiles.get(userId);
      if (typeof profile.displayname === 'string') event.content.displayname = profile.displayname;
      if (typeof profile.avatar_url === 'string' && profile.avatar_url !== '') event.content.avatar_url = profile.avatar_url;
      events.push(event);
    }
    return { top: topEvents(request, 'presence', events), hasUpdates: events.length > 0 };
  }
}

/**
 * Top-level `to_device` (modules/send_to_device.md "Server behaviour"):
 * messages for this device in arrival order, at most 100 per response. The
 * `since` token's position confirms the messages of the response that gave
 * it, which are then deleted (ToDeviceStore.deliver).
 */
@Injectable()
export class ToDeviceSyncSection implements SyncSection {
  readonly stream = 'to_device' as const;

  constructor(private readonly stores: UserDataStores) {}

  currentPosition(): Promise<number> {
    return this.stores.toDevice.safePosition();
  }

  async build(request: SyncSectionRequest): Promise<SyncSectionResult> {
    const events = await this.stores.toDevice.deliver(request.userId, request.deviceId, request.from.to_device, request.to.to_device);
    return { top: topEvents(request, 'to_device', events), hasUpdates: events.length > 0 };
  }
}
