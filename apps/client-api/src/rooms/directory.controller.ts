import { Body, Controller, Delete, Get, HttpCode, Inject, Optional, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import { FEDERATION_CLIENT, FederationHttpError, type FederationClient } from '@atrium/federation-client';
import { AccessTokenGuard, CurrentRequester, Errors, MatrixError, optionalJsonObject, requireJsonObject, requireString, type Requester } from '@atrium/http';
import { domainOfId, isValidServerName, type JsonObject } from '@atrium/matrix';
import type { RoomRecord } from '@atrium/rooms';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { RemoteMembership } from './remote-membership';
import { RoomServerClient } from './room-server.client';
import { RoomsService, type RoomSummary } from './rooms.service';

/** A /publicRooms chunk (PublishedRoomsChunk): the room summary without the fields only /room_summary gives. */
type PublicRoomsChunk = Omit<RoomSummary, 'room_version' | 'encryption' | 'allowed_room_ids'>;

interface PublicRoomsResponse {
  chunk: PublicRoomsChunk[];
  next_batch?: string;
  prev_batch?: string;
  total_room_count_estimate: number;
}

const DEFAULT_PUBLIC_ROOMS_LIMIT = 100;

/**
 * Room aliases and the published room directory. Spec:
 * data/api/client-server/directory.yaml (aliases) and list_public_rooms.yaml,
 * content/client-server-api/_index.md "Room aliases" and "Published room directory".
 * Endpoints whose spec has no `security` block (alias lookup, directory
 * visibility lookup, GET publicRooms) answer without an access token.
 */
@Controller(CLIENT_PREFIXES)
export class DirectoryController {
  constructor(
    private readonly rooms: RoomsService,
    private readonly roomServer: RoomServerClient,
    private readonly remote: RemoteMembership,
    @Optional() @Inject(FEDERATION_CLIENT) private readonly federation?: FederationClient,
  ) {}

  // ---- aliases ----

  /** directory.yaml PUT: 409 M_UNKNOWN if the alias exists; 400 M_INVALID_PARAM for a bad or foreign alias. */
  @Put('directory/room/:roomAlias')
  @UseGuards(AccessTokenGuard)
  async putAlias(@CurrentRequester() requester: Requester, @Param('roomAlias') alias: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const roomId = requireString(body, 'room_id');
    this.rooms.checkAlias(alias);
    if (domainOfId(alias) !== this.rooms.serverName) throw Errors.invalidParam(`Aliases must be on this server (${this.rooms.serverName})`);
    await this.rooms.requireRoom(roomId, () => Errors.notFound(`Room ${roomId} not found`));
    if (!(await this.rooms.store.createAlias(alias, roomId, requester.userId))) {
      throw new MatrixError(409, 'M_UNKNOWN', `Room alias ${alias} already exists`);
    }
    return {};
  }

  @Get('directory/room/:roomAlias')
  async getAlias(@Param('roomAlias') alias: string): Promise<{ room_id: string; servers: string[] }> {
    // Another server's alias: its directory, over federation (GET /query/directory).
    if (domainOfId(this.rooms.checkAlias(alias)) !== this.rooms.serverName) {
      const resolved = await this.remote.resolveAlias(alias);
      return { room_id: resolved.roomId, servers: [...new Set(resolved.servers)] };
    }
    const roomId = await this.rooms.resolveAlias(alias);
    return { room_id: roomId, servers: [this.rooms.serverName] };
  }

  /**
   * directory.yaml DELETE: "Servers may choose to implement additional access
   * control checks here". Allowed: the alias's creator, or a member whose
   * power level may send m.room.canonical_alias.
   */
  @Delete('directory/room/:roomAlias')
  @UseGuards(AccessTokenGuard)
  async deleteAlias(@CurrentRequester() requester: Requester, @Param('roomAlias') alias: string): Promise<Record<string, never>> {
    this.rooms.checkAlias(alias);
    const record = await this.rooms.store.getAlias(alias);
    if (!record) throw Errors.notFound(`Room alias ${alias} not found`);
    if (record.creator !== requester.userId) {
      const room = await this.rooms.store.getRoom(record.room_id);
      const member = await this.rooms.store.getMembership(record.room_id, requester.userId);
      const allowed = room && member?.membership === 'join' && (await this.rooms.powerLevel(room, requester.userId)) >= (await this.rooms.stateLevel(room, 'm.room.canonical_alias'));
      if (!allowed) throw Errors.forbidden('You may not delete this alias');
    }
    await this.rooms.store.deleteAlias(alias);
    return {};
  }

  /** directory.yaml GET /rooms/{roomId}/aliases: for members, or anyone when the room is world_readable. */
  @Get('rooms/:roomId/aliases')
  @UseGuards(AccessTokenGuard)
  async roomAliases(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string): Promise<{ aliases: string[] }> {
    const forbidden = (): MatrixError => Errors.forbidden(`You are not joined to room ${roomId}`);
    await this.rooms.requireRoom(roomId, forbidden);
    const membership = await this.rooms.store.getMembership(roomId, requester.userId);
    if (membership?.membership !== 'join' && (await this.rooms.historyVisibility(roomId)) !== 'world_readable') throw forbidden();
    return { aliases: await this.rooms.store.aliasesOfRoom(roomId) };
  }

  // ---- published room directory ----

  @Get('directory/list/room/:roomId')
  async getVisibility(@Param('roomId') roomId: string): Promise<{ visibility: 'public' | 'private' }> {
    const room = await this.rooms.requireRoom(roomId, () => Errors.notFound('Room not found'));
    return { visibility: room.visibility };
  }

  /**
   * PUT directory/list/room: "Servers MAY implement additional access control
   * checks": a joined member whose power level may send m.room.canonical_alias.
   */
  @Put('directory/list/room/:roomId')
  @UseGuards(AccessTokenGuard)
  async setVisibility(@CurrentRequester() requester: Requester, @Param('roomId') roomId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const visibility = body['visibility'] ?? 'public';
    if (visibility !== 'public' && visibility !== 'private') throw Errors.badJson('"visibility" must be "public" or "private"');
    const room = await this.rooms.requireRoom(roomId, () => Errors.notFound('Room not found'));
    const member = await this.rooms.store.getMembership(roomId, requester.userId);
    if (member?.membership !== 'join' || (await this.rooms.powerLevel(room, requester.userId)) < (await this.rooms.stateLevel(room, 'm.room.canonical_alias'))) {
      throw Errors.forbidden('You may not change the directory visibility of this room');
    }
    await this.roomServer.setVisibility({ room_id: roomId, visibility });
    return {};
  }

  @Get('publicRooms')
  async publicRoomsGet(@Query('limit') limit?: string, @Query('since') since?: string, @Query('server') server?: string): Promise<PublicRoomsResponse> {
    return this.publicRooms({ limit: parseLimit(limit), since, server, filter: undefined });
  }

  @Post('publicRooms')
  @HttpCode(200)
  @UseGuards(AccessTokenGuard)
  async publicRoomsPost(@Query('server') server: string | undefined, @Body() rawBody: unknown): Promise<PublicRoomsResponse> {
    const body = optionalJsonObject(rawBody);
    const limitRaw = body['limit'];
    if (limitRaw !== undefined && (typeof limitRaw !== 'number' || !Number.isInteger(limitRaw) || limitRaw < 0)) throw Errors.badJson('"limit" must be a non-negative integer');
    const since = body['since'];
    if (since !== undefined && typeof since !== 'string') throw Errors.badJson('"since" must be a string');
    const filterRaw = body['filter'];
    if (filterRaw !== undefined && filterRaw !== null && (typeof filterRaw !== 'object' || Array.isArray(filterRaw))) throw Errors.badJson('"filter" must be an object');
    const filter = (filterRaw ?? undefined) as JsonObject | undefined;
    const term = filter?.['generic_search_term'];
    if (term !== undefined && term !== null && typeof term !== 'string') throw Errors.badJson('"generic_search_term" must be a string');
    const roomTypes = filter?.['room_types'];
    if (roomTypes !== undefined && roomTypes !== null && !Array.isArray(roomTypes)) throw Errors.badJson('"room_types" must be a list');
    return this.publicRooms({ limit: limitRaw as number | undefined, since, server, filter: { term: term ?? undefined, roomTypes: roomTypes ?? undefined } });
  }

  private async publicRooms(options: {
    limit: number | undefined;
    since: string | undefined;
    server: string | undefined;
    filter: { term?: string; roomTypes?: Array<string | null | JsonObject | unknown> } | undefined;
  }): Promise<PublicRoomsResponse> {
    // Another server's directory: asked over federation (server-server-api "Published Room Directory").
    if (options.server !== undefined && options.server !== this.rooms.serverName) return this.remotePublicRooms(options.server, options);
    let offset = 0;
    if (options.since !== undefined) {
      if (!/^\d+$/.test(options.since)) throw Errors.invalidParam('Invalid "since" token');
      offset = Number(options.since);
    }
    const all: PublicRoomsChunk[] = [];
    for (const room of await this.rooms.store.publicRooms()) all.push(await this.chunkOf(room));
    const term = options.filter?.term?.toLowerCase();
    const types = options.filter?.roomTypes;
    const matching = all
      .filter((c) => !term || [c.name, c.topic, c.canonical_alias, c.room_id].some((v) => v?.toLowerCase().includes(term)))
      // room_types: null stands for rooms without a type.
      .filter((c) => !types || types.some((t) => (t === null ? c.room_type === undefined : t === c.room_type)))
      .sort((a, b) => b.num_joined_members - a.num_joined_members || (a.room_id < b.room_id ? -1 : 1));
    const limit = options.limit ?? DEFAULT_PUBLIC_ROOMS_LIMIT;
    const chunk = matching.slice(offset, offset + limit);
    const response: PublicRoomsResponse = { chunk, total_room_count_estimate: matching.length };
    if (offset + limit < matching.length) response.next_batch = String(offset + limit);
    if (offset > 0) response.prev_batch = String(Math.max(0, offset - limit));
    return response;
  }

  /** GET (no filter) or POST /_matrix/federation/v1/publicRooms on `server`; its Matrix errors pass through, an unreachable server is 502. */
  private async remotePublicRooms(server: string, options: { limit: number | undefined; since: string | undefined; filter: { term?: string; roomTypes?: unknown[] } | undefined }): Promise<PublicRoomsResponse> {
    if (!isValidServerName(server)) throw Errors.invalidParam(`${JSON.stringify(server)} is not a server name`);
    if (!this.federation) throw Errors.notFound(`Cannot query the directory of ${server}`);
    const filtered = options.filter !== undefined && (options.filter.term !== undefined || options.filter.roomTypes !== undefined);
    let answer: JsonObject;
    try {
      if (filtered) {
        const filter: JsonObject = {};
        if (options.filter?.term !== undefined) filter['generic_search_term'] = options.filter.term;
        if (options.filter?.roomTypes !== undefined) filter['room_types'] = options.filter.roomTypes as JsonObject[];
        const body: JsonObject = { filter };
        if (options.limit !== undefined) body['limit'] = options.limit;
        if (options.since !== undefined) body['since'] = options.since;
        answer = await this.federation.request<JsonObject>({ destination: server, method: 'POST', path: '/_matrix/federation/v1/publicRooms', body });
      } else {
        const query: Record<string, string | number> = {};
        if (options.limit !== undefined) query['limit'] = options.limit;
        if (options.since !== undefined) query['since'] = options.since;
        answer = await this.federation.request<JsonObject>({ destination: server, method: 'GET', path: '/_matrix/federation/v1/publicRooms', query });
      }
    } catch (err) {
      if (err instanceof FederationHttpError && err.errcode !== undefined && err.status >= 400 && err.status < 500) throw new MatrixError(err.status, err.errcode, `${server}: ${String((err.body as { error?: unknown })?.error ?? 'error')}`);
      throw new MatrixError(502, 'M_UNKNOWN', `Could not read the room directory of ${server}: ${(err as Error).message}`);
    }
    const chunk = Array.isArray(answer['chunk']) ? (answer['chunk'] as unknown as PublicRoomsChunk[]) : [];
    const response: PublicRoomsResponse = { chunk, total_room_count_estimate: typeof answer['total_room_count_estimate'] === 'number' ? answer['total_room_count_estimate'] : chunk.length };
    if (typeof answer['next_batch'] === 'string') response.next_batch = answer['next_batch'];
    if (typeof answer['prev_batch'] === 'string') response.prev_batch = answer['prev_batch'];
    return response;
  }

  private async chunkOf(room: RoomRecord): Promise<PublicRoomsChunk> {
    const { room_version: _version, encryption: _encryption, allowed_room_ids: _allowed, ...chunk } = await this.rooms.summary(room);
    return chunk;
  }
}

function parseLimit(raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^\d+$/.test(raw)) throw Errors.invalidParam('"limit" must be a non-negative integer');
  return Number(raw);
}
