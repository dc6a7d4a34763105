import { Body, Controller, Get, HttpCode, Inject, Param, Post, Query, UseGuards } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import { OpenIdTokenStore } from '@atrium/accounts';
import type { AtriumConfig } from '@atrium/config';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { isValidUserId } from '@atrium/matrix';
import { ACCOUNT_STORE, CONFIG } from '@atrium/platform';
import { ROOM_STORE, type RoomStore } from '@atrium/rooms';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { turnCredentials, type TurnCredentials } from './turn';

export const OPENID_TOKEN_STORE = Symbol('atrium:openid-token-store');

/** Room IDs per page of GET /mutual_rooms. */
const MUTUAL_ROOMS_PAGE = 100;

/** VoIP (voip.yaml), OpenID (openid.yaml), server administration (admin.yaml). */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class MiscController {
  constructor(
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(OPENID_TOKEN_STORE) private readonly openIdTokens: OpenIdTokenStore,
  ) {}

  /**
   * GET /voip/turnServer. With `voip.turn_uris` and `voip.turn_shared_secret`
   * configured: credentials by the TURN REST convention (turn.ts). Without
   * TURN the spec defines no answer; we answer 200 `{}` as Synapse and
   * Dendrite do, which clients (matrix-js-sdk) read as "no TURN servers" and
   * fall back to STUN, where an error would make them retry. Guests get
   * credentials unless `voip.turn_allow_guests` is false (403
   * M_GUEST_ACCESS_FORBIDDEN, as for other endpoints closed to guests).
   */
  @Get('voip/turnServer')
  @AllowGuests()
  turnServer(@CurrentRequester() requester: Requester): TurnCredentials | Record<string, never> {
    if (requester.isGuest && !this.config.voip.turn_allow_guests) throw Errors.guestAccessForbidden();
    return turnCredentials(this.config.voip, requester.userId, Date.now()) ?? {};
  }

  /**
   * POST /user/{userId}/openid/request_token. "Should be the user who is
   * authenticated for the request": another user is 403 M_FORBIDDEN. The body
   * is required ("An empty object. Reserved for future expansion"). The token
   * is only good for the federation GET /openid/userinfo
   * (apps/federation-inbound), never as an access token.
   */
  @Post('user/:userId/openid/request_token')
  @HttpCode(200)
  async requestOpenIdToken(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() rawBody: unknown): Promise<{ access_token: string; token_type: 'Bearer'; matrix_server_name: string; expires_in: number }> {
    requireJsonObject(rawBody);
    if (userId !== requester.userId) throw Errors.forbidden('Cannot request an OpenID token for another user');
    const { token, expiresInMs } = await this.openIdTokens.issue(userId);
    return { access_token: token, token_type: 'Bearer', matrix_server_name: this.config.server_name, expires_in: Math.floor(expiresInMs / 1000) };
  }

  /**
   * GET /admin/whois/{userId}: "may be restricted to only be called by the
   * user being looked up, or by a server admin" — so it is: anyone else gets
   * 403 M_FORBIDDEN, checked before the lookup so it reveals nothing. An
   * unknown (or remote) user is 404 M_NOT_FOUND. One session per device (a
   * device holds one token pair here) with its last seen address and time;
   * user agents are not recorded, so `user_agent` is left out.
   */
  @Get('admin/whois/:userId')
  async whois(@CurrentRequester() requester: Requester, @Param('userId') userId: string): Promise<{ user_id: string; devices: Record<string, { sessions: Array<{ connections: Array<{ ip?: string; last_seen?: number }> }> }> }> {
    if (userId !== requester.userId) {
      const me = await this.accounts.getUser(requester.userId);
      if (!me?.is_admin) throw Errors.forbidden('Only server administrators may look up other users');
    }
    const user = await this.accounts.getUser(userId);
    if (!user) throw Errors.notFound('Unknown user');
    const devices: Record<string, { sessions: Array<{ connections: Array<{ ip?: string; last_seen?: number }> }> }> = {};
    for (const device of await this.accounts.listDevices(userId)) {
      const connection: { ip?: string; last_seen?: number } = {};
      if (device.last_seen_ip !== null) connection.ip = device.last_seen_ip;
      if (device.last_seen_ts !== null) connection.last_seen = device.last_seen_ts;
      devices[device.device_id] = { sessions: [{ connections: Object.keys(connection).length > 0 ? [connection] : [] }] };
    }
    return { user_id: userId, devices };
  }
}

/** GET /v1/mutual_rooms (mutual_rooms.yaml, module mutual_rooms.md). */
@Controller('_matrix/client/v1')
@UseGuards(AccessTokenGuard)
export class MutualRoomsController {
  constructor(@Inject(ROOM_STORE) private readonly rooms: RoomStore) {}

  /**
   * Rooms "where both the authenticated user and `user_id` have a membership
   * of type `join`", in room ID order, 100 a page; `next_batch` is the last
   * room ID given (the next page starts after it), so a page stays right
   * when rooms are joined or left between calls. 400 M_MISSING_PARAM
   * without `user_id`, 400 M_INVALID_PARAM for a non-compliant ID, one's own
   * ID or a `from` that is no such token; an ID of no user: an empty list
   * ("MUST return an empty list of rooms").
   */
  @Get('mutual_rooms')
  async mutualRooms(@CurrentRequester() requester: Requester, @Query('user_id') userId: unknown, @Query('from') from: unknown): Promise<{ joined: string[]; count: number; next_batch?: string }> {
    if (userId === undefined || userId === '') throw Errors.missingParam('user_id');
    if (typeof userId !== 'string' || !isValidUserId(userId, 'historical')) throw Errors.invalidParam('The user ID provided was invalid');
    if (userId === requester.userId) throw Errors.invalidParam('Cannot list rooms shared with oneself');
    if (from !== undefined && (typeof from !== 'string' || !from.startsWith('!'))) throw Errors.invalidParam('Invalid "from" token');
    const [mine, theirs] = await Promise.all([this.rooms.roomsOfUser(requester.userId, ['join']), this.rooms.roomsOfUser(userId, ['join'])]);
    const theirIds = new Set(theirs.map((m) => m.room_id));
    const shared = mine.map((m) => m.room_id).filter((id) => theirIds.has(id)).sort();
    const rest = from === undefined ? shared : shared.filter((id) => id > from);
    const joined = rest.slice(0, MUTUAL_ROOMS_PAGE);
    const response: { joined: string[]; count: number; next_batch?: string } = { joined, count: shared.length };
    if (rest.length > joined.length) response.next_batch = joined[joined.length - 1];
    return response;
  }
}
