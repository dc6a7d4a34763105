import { Body, Controller, Get, Param, Put, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { PRESENCE_STATES, type PresenceContent, type PresenceState } from '@atrium/user-data';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { UserDataStores } from './user-data.stores';
import { requireSelf } from './user-params';

/** Spec: data/api/client-server/presence.yaml and modules/presence.md. */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class PresenceController {
  constructor(private readonly stores: UserDataStores) {}

  /** "You cannot set the presence state of another user." */
  @Put('presence/:userId/status')
  async set(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    requireSelf(requester, userId, 'set presence');
    const body = requireJsonObject(rawBody);
    const presence = body.presence;
    if (presence === undefined) throw Errors.missingParam('presence');
    if (typeof presence !== 'string') throw Errors.badJson('"presence" must be a string');
    if (!(PRESENCE_STATES as readonly string[]).includes(presence)) throw Errors.invalidParam(`"presence" must be one of ${PRESENCE_STATES.join(', ')}`);
    const statusMsg = body.status_msg;
    if (statusMsg !== undefined && statusMsg !== null && typeof statusMsg !== 'string') throw Errors.badJson('"status_msg" must be a string');
    await this.stores.presence.set(userId, presence as PresenceState, statusMsg as string | null | undefined, await this.stores.presenceAudience(userId));
    return {};
  }

  /**
   * 404 "There is no presence state for this user. This user may not exist".
   * A local user who never set presence is `offline` (the state of a user
   * "not connected to an event stream").
   */
  @Get('presence/:userId/status')
  async get(@Param('userId') userId: string): Promise<PresenceContent> {
    const stored = await this.stores.presence.get(userId);
    if (stored) return stored;
    if (!(await this.stores.isLocalUser(userId))) throw Errors.notFound('No presence for this user');
    return { presence: 'offline' };
  }
}
