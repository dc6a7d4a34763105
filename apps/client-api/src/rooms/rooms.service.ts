import { Inject, Injectable } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { Errors, MatrixError } from '@atrium/http';
import { domainOfId, getRoomVersion, isValidRoomAlias, readPowerLevels, requiredPowerLevel, userPowerLevel, type RoomEvent, type RoomVersion } from '@atrium/matrix';
import { CONFIG } from '@atrium/platform';
import { eventOf, ROOM_STORE, type EventRecord, type RoomRecord, type RoomStore } from '@atrium/rooms';

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
