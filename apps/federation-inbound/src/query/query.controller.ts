/**
 * Federation queries. Spec: server-server-api "Querying for information",
 * data/api/server-server/query.yaml (`/query/directory`, `/query/profile`,
 * the generic `/query/{queryType}`). The X-Matrix guard has authenticated
 * the origin before these run.
 */
import { Controller, Get, Inject, Param, Query } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { AtriumConfig } from '@atrium/config';
import { Errors, MatrixError } from '@atrium/http';
import { domainOfId, isValidRoomAlias, isValidUserId, type JsonObject } from '@atrium/matrix';
import { ACCOUNT_STORE, CONFIG } from '@atrium/platform';
import type { RoomStore } from '@atrium/rooms';
import type { ProfileStore } from '@atrium/user-data';
import { QUERY_PROFILE_STORE, QUERY_ROOM_STORE } from './tokens';


/** A required query parameter. */
function requireString(value: unknown, name: string): string {
  if (typeof value !== 'string' || value === '') throw Errors.missingParam(name);
  return value;
}

@Controller('_matrix/federation/v1')
export class FederationQueryController {
  constructor(
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(QUERY_ROOM_STORE) private readonly rooms: RoomStore,
    @Inject(QUERY_PROFILE_STORE) private readonly profiles: ProfileStore,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
  ) {}

  /**
   * GET /query/directory: a local alias → its room and "server names that
   * are likely to hold the given room": ours first, then the servers of the
   * room's joined members.
   */
  @Get('query/directory')
  async directory(@Query('room_alias') roomAlias: unknown): Promise<{ room_id: string; servers: string[] }> {
    const alias = requireString(roomAlias, 'room_alias');
    if (!isValidRoomAlias(alias)) throw Errors.invalidParam('room_alias is not a room alias');
    if (domainOfId(alias) !== this.config.server_name) throw Errors.notFound('Room alias not found.');
    const record = await this.rooms.getAlias(alias);
    if (!record) throw Errors.notFound('Room alias not found.');
    const servers = [this.config.server_name];
    for (const userId of await this.rooms.joinedUsers(record.room_id)) {
      const server = domainOfId(userId);
      if (server && !servers.includes(server)) servers.push(server);
    }
    return { room_id: record.room_id, servers };
  }

  /**
   * GET /query/profile: a local user's profile, or one `field` of it. The
   * whole profile is public (the client API serves it without a token), so
   * every field is answered. A user
   * that does not exist here (or is deactivated) and a field that is not set
   * are 404 M_NOT_FOUND, as query.yaml lists.
   */
  @Get('query/profile')
  async profile(@Query('user_id') userIdParam: unknown, @Query('field') fieldParam: unknown): Promise<JsonObject> {
    const userId = requireString(userIdParam, 'user_id');
    if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam('user_id is not a user ID');
    if (domainOfId(userId) !== this.config.server_name) throw Errors.notFound('User does not exist.');
    const user = await this.accounts.getUser(userId);
    if (!user || user.deactivated) throw Errors.notFound('User does not exist.');
    const fields = (await this.profiles.get(userId)) as JsonObject;
    if (fieldParam === undefined) return fields;
    if (typeof fieldParam !== 'string' || fieldParam === '') throw Errors.invalidParam('field must be a string');
    if (!Object.prototype.hasOwnProperty.call(fields, fieldParam) || fields[fieldParam] === null) throw Errors.notFound('Profile field not found.');
    return { [fieldParam]: fields[fieldParam] };
  }

  /** Other query types (query.yaml's generic `/query/{queryType}`): none, so the spec's "unsupported endpoint" answer. */
  @Get('query/:queryType')
  unknownQuery(@Param('queryType') queryType: string): never {
    throw new MatrixError(404, 'M_UNRECOGNIZED', `Unknown query type ${queryType}`);
  }
}
