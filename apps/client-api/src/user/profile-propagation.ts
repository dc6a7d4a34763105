import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import { BUS } from '@atrium/platform';
import { eventOf } from '@atrium/rooms';
import type { ProfileFields } from '@atrium/user-data';
import { ROOM_SERVER_SUBJECTS, type SendEventRequest, type SendEventResponse } from '@atrium/app-room-server';
import { UserDataStores } from './user-data.stores';

/** The profile fields member events and presence carry. */
const PROPAGATED_FIELDS = ['displayname', 'avatar_url'] as const;

/**
 * client-server-api "Events on Change of Profile Information": after a change
 * of display name or avatar URL, "an `m.room.member` event (with a `join`
 * membership) is sent to every room the user is a member of" and "an
 * `m.presence` presence status update is sent … containing the new values".
 *
 * Member events go through the room server (the single writer of each room).
 * A room that refuses (say, a power-level change since the join) must not
 * undo the profile change the client asked for, so failures are logged and
 * the other rooms still get their update, as other homeservers do.
 */
@Injectable()
export class ProfilePropagation {
  private readonly logger = new Logger('ProfilePropagation');

  constructor(
    private readonly stores: UserDataStores,
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  async afterChange(userId: string, before: ProfileFields, after: ProfileFields): Promise<void> {
    if (PROPAGATED_FIELDS.every((key) => before[key] === after[key])) return;
    for (const membership of await this.stores.rooms.roomsOfUser(userId, ['join'])) {
      await this.updateMemberEvent(membership.room_id, userId, after);
    }
    await this.stores.presence.touch(userId, await this.stores.presenceAudience(userId));
  }

  private async updateMemberEvent(roomId: string, userId: string, profile: ProfileFields): Promise<void> {
    try {
      const current = await this.stores.rooms.currentStateEvent(roomId, 'm.room.member', userId);
      if (!current || current.membership !== 'join') return;
      const content = { ...eventOf(current).content };
      for (const key of PROPAGATED_FIELDS) {
        const value = profile[key];
        if (typeof value === 'string' && value !== '') content[key] = value;
        else delete content[key];
      }
      await this.bus.request<SendEventRequest, SendEventResponse>(ROOM_SERVER_SUBJECTS.sendEvent, {
        room_id: roomId,
        sender: userId,
        type: 'm.room.member',
        state_key: userId,
        content,
      });
    } catch (err) {
      this.logger.warn(`profile change of ${userId} not sent to ${roomId}: ${(err as Error).message}`);
    }
  }
}
