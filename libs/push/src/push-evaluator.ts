import { threadOf } from '@atrium/ephemeral';
import { evaluatePushRules, getRoomVersion, userPowerLevel, type PushEvaluation, type PushRuleset, type RoomEvent } from '@atrium/matrix';
import { eventOf, type EventRecord, type MembershipRecord, type RoomStore } from '@atrium/rooms';
import type { PushRulesStore } from './push-rules-store';

/**
 * Gathers what push rule conditions need from room storage and runs the pure
 * evaluation of libs/matrix (client-server-api "Server behaviour": "When
 * receiving a new event homeservers process push rules for each of the local
 * users in the room (excluding the sender)"). Used by the push gateway for
 * every event, and by /sync for the events the gateway has not reached yet.
 */
export interface RoomPushContext {
  roomId: string;
  /** Joined members at evaluation time, with the position of their membership event. */
  joined: Map<string, MembershipRecord>;
  powerLevels: Record<string, unknown> | null;
  /** The sender's level as the authorization rules read it (creators, defaults, v12 privileged creators). */
  senderLevel(sender: string): number;
}

function usesDisplayName(rules: PushRuleset): boolean {
  return [...rules.override, ...rules.underride].some((r) => r.enabled && (r.conditions ?? []).some((c) => c.kind === 'contains_display_name'));
}

export class PushEvaluator {
  constructor(
    private readonly rooms: RoomStore,
    private readonly rules: PushRulesStore,
  ) {}

  rulesOf(userId: string): Promise<PushRuleset> {
    return this.rules.get(userId);
  }

  async roomContext(roomId: string): Promise<RoomPushContext> {
    const [members, createRecord, powerRecord] = await Promise.all([
      this.rooms.membersOfRoom(roomId, ['join']),
      this.rooms.currentStateEvent(roomId, 'm.room.create', ''),
      this.rooms.currentStateEvent(roomId, 'm.room.power_levels', ''),
    ]);
    const create = createRecord ? eventOf(createRecord) : undefined;
    const power = powerRecord ? eventOf(powerRecord) : undefined;
    const versionId = typeof create?.content['room_version'] === 'string' ? (create.content['room_version'] as string) : '1';
    const version = getRoomVersion(versionId) ?? getRoomVersion('1');
    const lookup = (type: string, stateKey: string): RoomEvent | undefined =>
      type === 'm.room.create' && stateKey === '' ? create : type === 'm.room.power_levels' && stateKey === '' ? power : undefined;
    return {
      roomId,
      joined: new Map(members.map((m) => [m.user_id, m])),
      powerLevels: power ? (power.content as Record<string, unknown>) : null,
      senderLevel: (sender) => (version ? userPowerLevel(sender, lookup, version) : 0),
    };
  }

  /** The user's display name in the room (contains_display_name), from their member event. */
  async displayName(roomId: string, userId: string): Promise<string | null> {
    const member = await this.rooms.currentStateEvent(roomId, 'm.room.member', userId);
    const name = member ? eventOf(member).content['displayname'] : undefined;
    return typeof name === 'string' ? name : null;
  }

  async evaluate(userId: string, event: RoomEvent, room: RoomPushContext, ruleset?: PushRuleset): Promise<PushEvaluation> {
    const rules = ruleset ?? (await this.rules.get(userId));
    return evaluatePushRules(rules, event as unknown as Record<string, unknown>, {
      userId,
      memberCount: room.joined.size,
      powerLevels: room.powerLevels,
      senderLevelOverride: room.senderLevel(event.sender),
      // Read only when an enabled rule asks (the deprecated contains_display_name): one read per member and event saved.
      displayName: usesDisplayName(rules) ? await this.displayName(room.roomId, userId) : null,
    });
  }

  /** The thread an event counts in ("Receiving notifications": follow relations, at most 3 hops). */
  threadOf(event: RoomEvent): Promise<string> {
    return threadOf(event, async (eventId) => {
      const [parent] = await this.rooms.getEvents([eventId]);
      return parent ? eventOf(parent) : null;
    });
  }

  /** Who to evaluate an event for: joined local members (joined before it) and a local invitee. */
  recipients(record: EventRecord, event: RoomEvent, room: RoomPushContext, isLocal: (userId: string) => boolean): string[] {
    const out = new Set<string>();
    for (const [userId, membership] of room.joined) {
      // A member who joined after the event (the gateway running behind) was not in the room for it.
      if (isLocal(userId) && membership.stream <= record.stream && userId !== event.sender) out.add(userId);
    }
    if (event.type === 'm.room.member' && typeof event.state_key === 'string' && event.content['membership'] === 'invite' && isLocal(event.state_key)) {
      out.add(event.state_key);
    }
    return [...out];
  }
}
