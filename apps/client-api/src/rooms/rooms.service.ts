import { Inject, Injectable } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { Errors, MatrixError } from '@atrium/http';
import { domainOfId, getRoomVersion, isValidRoomAlias, readPowerLevels, requiredPowerLevel, userPowerLevel, type RoomEvent, type RoomVersion } from '@atrium/matrix';
import { CONFIG } from '@atrium/platform';
import { eventOf, ROOM_STORE, type EventRecord, type RoomRecord, type RoomStore } from '@atrium/rooms';

/** The room summary fields (definitions/room_summary.yaml), shared by publicRooms and /room_summary. */
export interface RoomSummary {
  room_id: string;
  num_joined_members: number;
  world_readable: boolean;
  guest_can_join: boolean;
  room_version: string;
  name?: string;
  topic?: string;
  canonical_alias?: string;
  avatar_url?: string;
  join_rule?: string;
  room_type?: string;
  encryption?: string;
  allowed_room_ids?: string[];
}

/** What a user may read of a room's state (client-server-api GET /rooms/{roomId}/state…). */
export type StateAccess = { kind: 'current' } | { kind: 'at'; position: number };

/**
 * Reads the endpoints share: room lookup, the membership checks the spec
 * describes per endpoint, alias resolution, power levels.
 */
@Injectable()
export class RoomsService {
  constructor(
    @Inject(ROOM_STORE) readonly store: RoomStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  get serverName(): string {
    return this.config.server_name;
  }

  /** The configured room version for new rooms. */
  get defaultRoomVersion(): string {
    return this.config.rooms.default_version;
  }

  /** A `{roomId}` path parameter: "format: mx-room-id, pattern: ^!". */
  checkRoomId(roomId: string): string {
    if (!roomId.startsWith('!') || roomId.length > 255) throw Errors.invalidParam(`Invalid room ID ${JSON.stringify(roomId)}`);
    return roomId;
  }

  /** The room, or `error` (403 where the spec says "not a member", 404 where it says "not found"). */
  async requireRoom(roomId: string, error: () => MatrixError): Promise<RoomRecord> {
    const room = await this.store.getRoom(this.checkRoomId(roomId));
    if (!room) throw error();
    return room;
  }

  versionOf(room: RoomRecord): RoomVersion {
    const version = getRoomVersion(room.version);
    if (!version) throw Errors.unknown(`room ${room._id} has an unknown version`);
    return version;
  }

  async historyVisibility(roomId: string): Promise<string> {
    const record = await this.store.currentStateEvent(roomId, 'm.room.history_visibility', '');
    const value = record ? eventOf(record).content['history_visibility'] : undefined;
    return typeof value === 'string' ? value : 'shared';
  }

  /**
   * GET state / members: "If the user is joined to the room then the state is
   * taken from the current state of the room. If the user has left the room
   * then the state is taken from the state of the room when they left."
   * Otherwise 403 ("You aren't a member of the room and weren't previously a
   * member of the room"); a world_readable room is readable by anyone.
   */
  async stateAccess(roomId: string, userId: string): Promise<StateAccess> {
    const forbidden = (): MatrixError => Errors.forbidden(`You aren't a member of room ${roomId}`);
    await this.requireRoom(roomId, forbidden);
    const membership = await this.store.getMembership(roomId, userId);
    if (membership?.membership === 'join') return { kind: 'current' };
    if (membership && (membership.membership === 'leave' || membership.membership === 'ban')) {
      // Never joined (a rejected invite) gives no access to the state.
      const event = await this.store.getEvent(membership.event_id);
      const prev = event ? (JSON.parse(event.unsigned) as { prev_content?: { membership?: string } }).prev_content?.membership : undefined;
      if (prev === 'join') return { kind: 'at', position: membership.stream };
    }
    if ((await this.historyVisibility(roomId)) === 'world_readable') return { kind: 'current' };
    throw forbidden();
  }

  async stateEvents(roomId: string, access: StateAccess): Promise<EventRecord[]> {
    return access.kind === 'current' ? this.store.currentState(roomId) : this.store.stateAtPosition(roomId, access.position);
  }

  async requireJoined(roomId: string, userId: string): Promise<RoomRecord> {
    const forbidden = (): MatrixError => Errors.forbidden(`You are not joined to room ${roomId}`);
    const room = await this.requireRoom(roomId, forbidden);
    const membership = await this.store.getMembership(roomId, userId);
    if (membership?.membership !== 'join') throw forbidden();
    return room;
  }

  /** The user's power level from the room's current state. */
  async powerLevel(room: RoomRecord, userId: string): Promise<number> {
    const version = this.versionOf(room);
    const state = new Map<string, RoomEvent>();
    for (const [type, key] of [['m.room.create', ''], ['m.room.power_levels', '']] as const) {
      const record = await this.store.currentStateEvent(room._id, type, key);
      if (record) state.set(type, eventOf(record));
    }
    return userPowerLevel(userId, (type, key) => (key === '' ? state.get(type) : undefined), version);
  }

  /** The level needed to send state of `type` (m.room.power_levels "events", else state_default). */
  async stateLevel(room: RoomRecord, type: string): Promise<number> {
    const record = await this.store.currentStateEvent(room._id, 'm.room.power_levels', '');
    return requiredPowerLevel(type, true, readPowerLevels(record ? eventOf(record) : undefined, this.versionOf(room)));
  }

  /** The power level needed to invite (m.room.power_levels `invite`, default 0). */
  async inviteLevel(room: RoomRecord): Promise<number> {
    const record = await this.store.currentStateEvent(room._id, 'm.room.power_levels', '');
    return readPowerLevels(record ? eventOf(record) : undefined, this.versionOf(room)).levels.invite;
  }

  /** The summary of a room from its current state. */
  async summary(room: RoomRecord): Promise<RoomSummary> {
    const state = new Map<string, Record<string, unknown>>();
    for (const record of await this.store.currentState(room._id)) {
      if (record.state_key === '') state.set(record.type, eventOf(record).content);
    }
    const str = (type: string, key: string): string | undefined => {
      const v = state.get(type)?.[key];
      return typeof v === 'string' ? v : undefined;
    };
    const summary: RoomSummary = {
      room_id: room._id,
      num_joined_members: (await this.store.joinedUsers(room._id)).length,
      world_readable: str('m.room.history_visibility', 'history_visibility') === 'world_readable',
      guest_can_join: str('m.room.guest_access', 'guest_access') === 'can_join',
      room_version: room.version,
    };
    const optional: Array<[keyof RoomSummary, string, string]> = [
      ['name', 'm.room.name', 'name'],
      ['topic', 'm.room.topic', 'topic'],
      ['canonical_alias', 'm.room.canonical_alias', 'alias'],
      ['avatar_url', 'm.room.avatar', 'url'],
      ['join_rule', 'm.room.join_rules', 'join_rule'],
      ['room_type', 'm.room.create', 'type'],
      ['encryption', 'm.room.encryption', 'algorithm'],
    ];
    for (const [field, type, key] of optional) {
      const value = str(type, key);
      if (value !== undefined) (summary as unknown as Record<string, unknown>)[field] = value;
    }
    if (summary.join_rule === 'restricted' || summary.join_rule === 'knock_restricted') {
      const allow = state.get('m.room.join_rules')?.['allow'];
      summary.allowed_room_ids = (Array.isArray(allow) ? allow : [])
        .map((entry: unknown) => (entry && typeof entry === 'object' ? (entry as Record<string, unknown>)['room_id'] : undefined))
        .filter((id): id is string => typeof id === 'string');
    }
    return summary;
  }

  /** A `{roomAlias}` path parameter. */
  checkAlias(alias: string): string {
    if (!isValidRoomAlias(alias)) throw Errors.invalidParam(`Invalid room alias ${JSON.stringify(alias)}`);
    return alias;
  }

  /**
   * Resolves `#alias:server` to a room ID. Only local aliases: a remote one
   * needs a federation directory query, which is not built yet, so it is
   * reported as not found (the spec's 404 for an unknown alias).
   */
  async resolveAlias(alias: string): Promise<string> {
    this.checkAlias(alias);
    if (domainOfId(alias) !== this.serverName) throw Errors.notFound(`Room alias ${alias} is on another server; federation is not available yet`);
    const record = await this.store.getAlias(alias);
    if (!record) throw Errors.notFound(`Room alias ${alias} not found`);
    return record.room_id;
  }
}
