import { Body, Controller, Delete, Get, Param, Put, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { IGNORED_USER_LIST, validateIgnoredUserList } from '../ignored-users/ignored-users';
import { UserDataStores } from './user-data.stores';
import { byteLength, methodNotAllowed, requireRoomId, requireSelf } from './user-params';

/**
 * "Servers MUST reject setting account data for event types that the server
 * manages by using a 405 error response. Currently, this only includes
 * `m.fully_read` and `m.push_rules`. This applies to both global and
 * room-specific account data." (modules/account_data.md "Server Behaviour";
 * account-data.yaml gives the errcode: M_BAD_JSON.)
 */
const SERVER_MANAGED_TYPES = new Set(['m.fully_read', 'm.push_rules']);

/** "The name of a tag MUST NOT exceed 255 bytes." (modules/tags.md) */
const MAX_TAG_BYTES = 255;

function refuseServerManaged(type: string): void {
  if (SERVER_MANAGED_TYPES.has(type)) throw methodNotAllowed('M_BAD_JSON', `Cannot set ${type} through this API`);
}

/** Spec: data/api/client-server/account-data.yaml ("Client Config") and tags.yaml ("Room Tagging"). */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class AccountDataController {
  constructor(private readonly stores: UserDataStores) {}

  @Put('user/:userId/account_data/:type')
  async setGlobal(
    @CurrentRequester() requester: Requester,
    @Param('userId') userId: string,
    @Param('type') type: string,
    @Body() body: unknown,
  ): Promise<Record<string, never>> {
    requireSelf(requester, userId, 'add account data');
    refuseServerManaged(type);
    const content = requireJsonObject(body);
    // "Ignoring Users": the list is read by /sync and /messages; malformed content is refused (see validateIgnoredUserList).
    if (type === IGNORED_USER_LIST) validateIgnoredUserList(content);
    await this.stores.accountData.set(userId, null, type, content);
    return {};
  }

  @Get('user/:userId/account_data/:type')
  async getGlobal(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('type') type: string): Promise<Record<string, unknown>> {
    requireSelf(requester, userId, 'read account data');
    const content = await this.stores.accountData.get(userId, null, type);
    if (!content) throw Errors.notFound('Account data not found');
    return content;
  }

  @Put('user/:userId/rooms/:roomId/account_data/:type')
  async setRoom(
    @CurrentRequester() requester: Requester,
    @Param('userId') userId: string,
    @Param('roomId') roomId: string,
    @Param('type') type: string,
    @Body() body: unknown,
  ): Promise<Record<string, never>> {
    requireSelf(requester, userId, 'add account data');
    requireRoomId(roomId);
    refuseServerManaged(type);
    await this.stores.accountData.set(userId, roomId, type, requireJsonObject(body));
    return {};
  }

  @Get('user/:userId/rooms/:roomId/account_data/:type')
  async getRoom(
    @CurrentRequester() requester: Requester,
    @Param('userId') userId: string,
    @Param('roomId') roomId: string,
    @Param('type') type: string,
  ): Promise<Record<string, unknown>> {
    requireSelf(requester, userId, 'read account data');
    requireRoomId(roomId);
    const content = await this.stores.accountData.get(userId, roomId, type);
    if (!content) throw Errors.notFound('Room account data not found');
    return content;
  }

  /** GET …/tags: `{ tags: { name: { order? } } }`, empty when the room has none. */
  @Get('user/:userId/rooms/:roomId/tags')
  async getTags(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('roomId') roomId: string) {
    requireSelf(requester, userId, 'read tags');
    requireRoomId(roomId);
    return { tags: await this.stores.accountData.getTags(userId, roomId) };
  }

  /** PUT …/tags/{tag}: the body is the tag's object; `order` "as a number between 0 and 1". */
  @Put('user/:userId/rooms/:roomId/tags/:tag')
  async setTag(
    @CurrentRequester() requester: Requester,
    @Param('userId') userId: string,
    @Param('roomId') roomId: string,
    @Param('tag') tag: string,
    @Body() rawBody: unknown,
  ): Promise<Record<string, never>> {
    requireSelf(requester, userId, 'add tags');
    requireRoomId(roomId);
    if (byteLength(tag) > MAX_TAG_BYTES) throw Errors.invalidParam(`Tag names must not exceed ${MAX_TAG_BYTES} bytes`);
    const body = requireJsonObject(rawBody);
    if (body.order !== undefined && (typeof body.order !== 'number' || !Number.isFinite(body.order))) {
      throw Errors.badJson('"order" must be a number');
    }
    await this.stores.accountData.setTag(userId, roomId, tag, body);
    return {};
  }

  /** DELETE …/tags/{tag}: removing a tag that is not set succeeds too (the result is the same). */
  @Delete('user/:userId/rooms/:roomId/tags/:tag')
  async deleteTag(
    @CurrentRequester() requester: Requester,
    @Param('userId') userId: string,
    @Param('roomId') roomId: string,
    @Param('tag') tag: string,
  ): Promise<Record<string, never>> {
    requireSelf(requester, userId, 'remove tags');
    requireRoomId(roomId);
    await this.stores.accountData.deleteTag(userId, roomId, tag);
    return {};
  }
}
