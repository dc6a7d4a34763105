import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import { publishOutgoingEdu } from '@atrium/federation-client';
import type { JsonObject } from '@atrium/matrix';
import type { DocumentStore } from '@atrium/storage';
import { RoomStore, StreamAllocator } from '@atrium/rooms';
import { AccountDataStore, PresenceStore, ProfileStore, SYNC_WAKE_SUBJECT, ToDeviceStore, type SyncWake } from '@atrium/user-data';

/**
 * The user-data stores of one client-api process, opened once over the
 * platform's document store. Writes wake /sync over the bus (design doc
 * "Waking sync"), so a long-poll in another client-api replica wakes too.
 */
export class UserDataStores {
  private constructor(
    readonly accountData: AccountDataStore,
    readonly profiles: ProfileStore,
    readonly presence: PresenceStore,
    readonly toDevice: ToDeviceStore,
    /** Read-only use: which rooms a user is in, who shares them (presence audience, profile propagation). */
    readonly rooms: RoomStore,
    readonly accounts: AccountStore,
  ) {}

  static async open(store: DocumentStore, bus: Bus, accounts: AccountStore): Promise<UserDataStores> {
    const positions = await StreamAllocator.open(store);
    const wake = (message: SyncWake): Promise<void> => bus.notify(SYNC_WAKE_SUBJECT, message);
    const presence = await PresenceStore.open(store, positions, wake);
    // server-server-api "Presence": each change of a local user's presence goes, as an m.presence EDU, to the
    // servers sharing a room with them (federation-outbound finds them from user_id and drops it when there is none).
    presence.onWrite(async (userId) => {
      const content = await presence.get(userId);
      if (!content) return;
      const push: JsonObject = { user_id: userId, presence: content.presence, last_active_ago: content.last_active_ago ?? 0 };
      if (typeof content.status_msg === 'string') push['status_msg'] = content.status_msg;
      if (content.currently_active !== undefined) push['currently_active'] = content.currently_active;
      try {
        await publishOutgoingEdu(bus, { edu_type: 'm.presence', content: { push: [push] }, user_id: userId });
      } catch {
        // Presence is best effort: the local write stands, and the next change carries the state again.
      }
    });
    return new UserDataStores(
      await AccountDataStore.open(store, positions, wake),
      await ProfileStore.open(store),
      presence,
      await ToDeviceStore.open(store, positions, wake),
      await RoomStore.open(store),
      accounts,
    );
  }

  /** Users who share a joined room with `userId` (and the user): who sees their presence ("Presence"). */
  async presenceAudience(userId: string): Promise<string[]> {
    const audience = new Set<string>([userId]);
    for (const membership of await this.rooms.roomsOfUser(userId, ['join'])) {
      for (const member of await this.rooms.joinedUsers(membership.room_id)) audience.add(member);
    }
    return [...audience];
  }

  /** Is `userId` a local account that exists (and is not deactivated)? */
  async isLocalUser(userId: string): Promise<boolean> {
    const user = await this.accounts.getUser(userId);
    return user !== null && !user.deactivated;
  }
}
