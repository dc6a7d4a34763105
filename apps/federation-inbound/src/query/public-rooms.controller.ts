/**
 * The published room directory over federation. Spec: server-server-api
 * "Published Room Directory", data/api/server-server/public_rooms.yaml
 * (GET and POST /_matrix/federation/v1/publicRooms), with the chunk of
 * client-server definitions/public_rooms_response.yaml.
 */
import { Body, Controller, Get, HttpCode, Inject, Post, Query } from '@nestjs/common';
import { Errors, requireJsonObject } from '@atrium/http';
import type { JsonObject } from '@atrium/matrix';
import type { RoomRecord, RoomStore } from '@atrium/rooms';
import { roomSummary, type RoomSummaryFields } from './room-summary';
import { QUERY_ROOM_STORE } from './tokens';

/** A /publicRooms chunk (PublishedRoomsChunk): the summary without room_version, encryption, allowed_room_ids. */
export type PublishedRoomChunk = Omit<RoomSummaryFields, 'room_version' | 'encryption' | 'allowed_room_ids'>;

export interface PublicRoomsPage {
  chunk: PublishedRoomChunk[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

interface ListOptions {
  limit: number;
  since?: string;
  term?: string;
  roomTypes?: unknown[];
  includeAllNetworks: boolean;
  thirdPartyInstanceId?: string;
}

@Controller('_matrix/federation/v1')
export class FederationPublicRoomsController {
  constructor(@Inject(QUERY_ROOM_STORE) private readonly rooms: RoomStore) {}

  /** GET: `limit` "Defaults to 0 (no limit)". */
  @Get('publicRooms')
  async list(
    @Query('limit') limit: unknown,
    @Query('since') since: unknown,
    @Query('include_all_networks') includeAllNetworks: unknown,
    @Query('third_party_instance_id') thirdPartyInstanceId: unknown,
  ): Promise<PublicRoomsPage> {
    if (limit !== undefined && (typeof limit !== 'string' || !/^\d{1,9}$/.test(limit))) throw Errors.invalidParam('limit must be a non-negative integer');
    if (since !== undefined && typeof since !== 'string') throw Errors.invalidParam('since must be a string');
    if (includeAllNetworks !== undefined && includeAllNetworks !== 'true' && includeAllNetworks !== 'false') throw Errors.invalidParam('include_all_networks must be true or false');
    if (thirdPartyInstanceId !== undefined && typeof thirdPartyInstanceId !== 'string') throw Errors.invalidParam('third_party_instance_id must be a string');
    return this.page({
      limit: limit === undefined ? 0 : Number(limit),
      since,
      includeAllNetworks: includeAllNetworks === 'true',
      thirdPartyInstanceId,
    });
  }

  /** POST: the same with `filter` (generic_search_term, room_types). */
  @Post('publicRooms')
  @HttpCode(200)
  async search(@Body() rawBody: unknown): Promise<PublicRoomsPage> {
    const body = requireJsonObject(rawBody);
    const { limit, since, filter, include_all_networks: all, third_party_instance_id: instance } = body;
    if (limit !== undefined && (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 0)) throw Errors.badJson('limit must be a non-negative integer');
    if (since !== undefined && typeof since !== 'string') throw Errors.badJson('since must be a string');
    if (all !== undefined && typeof all !== 'boolean') throw Errors.badJson('include_all_networks must be a boolean');
    if (instance !== undefined && typeof instance !== 'string') throw Errors.badJson('third_party_instance_id must be a string');
    if (filter !== undefined && filter !== null && (typeof filter !== 'object' || Array.isArray(filter))) throw Errors.badJson('filter must be an object');
    const f = (filter ?? {}) as JsonObject;
    const term = f['generic_search_term'];
    if (term !== undefined && term !== null && typeof term !== 'string') throw Errors.badJson('generic_search_term must be a string');
    const roomTypes = f['room_types'];
    if (roomTypes !== undefined && roomTypes !== null && !Array.isArray(roomTypes)) throw Errors.badJson('room_types must be a list');
    return this.page({
      limit: (limit as number | undefined) ?? 0,
      since,
      term: term ?? undefined,
      roomTypes: roomTypes ?? undefined,
      includeAllNetworks: all === true,
      thirdPartyInstanceId: instance,
    });
  }

  private async page(options: ListOptions): Promise<PublicRoomsPage> {
    // Rooms of application-service networks are not kept apart (Atrium has no
    // application services yet): a particular third-party network has none.
    if (options.thirdPartyInstanceId !== undefined && !options.includeAllNetworks) return { chunk: [], total_room_count_estimate: 0 };
    let offset = 0;
    if (options.since !== undefined) {
      if (!/^\d{1,9}$/.test(options.since)) throw Errors.invalidParam('Invalid since token');
      offset = Number(options.since);
    }
    const all: PublishedRoomChunk[] = [];
    for (const room of await this.rooms.publicRooms()) all.push(await this.chunkOf(room));
    const term = options.term?.toLowerCase();
    const types = options.roomTypes;
    const matching = all
      .filter((c) => !term || [c.name, c.topic, c.canonical_alias, c.room_id].some((v) => v?.toLowerCase().includes(term)))
      // room_types: null stands for rooms without a type.
      .filter((c) => !types || types.some((t) => (t === null ? c.room_type === undefined : t === c.room_type)))
      .sort((a, b) => b.num_joined_members - a.num_joined_members || (a.room_id < b.room_id ? -1 : 1));
    const end = options.limit > 0 ? offset + options.limit : matching.length;
    const page: PublicRoomsPage = { chunk: matching.slice(offset, end), total_room_count_estimate: matching.length };
    if (end < matching.length) page.next_batch = String(end);
    if (offset > 0) page.prev_batch = String(Math.max(0, options.limit > 0 ? offset - options.limit : 0));
    return page;
  }

  private async chunkOf(room: RoomRecord): Promise<PublishedRoomChunk> {
    return roomSummary(this.rooms, room, false);
  }
}
