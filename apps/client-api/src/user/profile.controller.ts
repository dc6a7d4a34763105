import { Body, Controller, Delete, Get, Inject, Param, Put, UseGuards } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, MatrixError, requireJsonObject, type Requester } from '@atrium/http';
import { domainOfId } from '@atrium/matrix';
import { CONFIG } from '@atrium/platform';
import type { ProfileFields } from '@atrium/user-data';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { ProfilePropagation } from './profile-propagation';
import { RemoteProfiles } from './remote-profiles';
import { UserDataStores } from './user-data.stores';
import { byteLength, requireSelf } from './user-params';

/**
 * profile.yaml: `keyName` "MUST be either `avatar_url`, `displayname`,
 * `m.tz`, or a custom field following the Common Namespaced Identifier
 * Grammar" (the schema's pattern).
 */
const KEY_PATTERN = /^(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)$/;
/** "M_KEY_TOO_LARGE: The supplied profile key exceeds the maximum allowed key length of 255 bytes." */
const MAX_KEY_BYTES = 255;
/** "the total profile MUST be under 64 KiB" (M_PROFILE_TOO_LARGE). */
const MAX_PROFILE_BYTES = 64 * 1024;
/**
 * "Servers MAY impose size limits on individual fields": the limits other
 * homeservers use (Synapse: 256 characters for a display name, 1000 for an
 * avatar URL), so a profile that works elsewhere works here.
 */
const MAX_DISPLAYNAME_LENGTH = 256;
const MAX_AVATAR_URL_LENGTH = 1000;
/** An MXC URI (client-server-api "Matrix Content (mxc://) URIs"): mxc://<server-name>/<media-id>. */
const MXC_URI = /^mxc:\/\/[^/\s]+\/[A-Za-z0-9_-]+$/;

function checkKey(keyName: string): void {
  if (byteLength(keyName) > MAX_KEY_BYTES) throw new MatrixError(400, 'M_KEY_TOO_LARGE', `Profile keys must not exceed ${MAX_KEY_BYTES} bytes`);
  if (!KEY_PATTERN.test(keyName)) throw Errors.invalidParam('Invalid profile key');
}

/** Per-key value rules of the PUT body schema. */
function checkValue(keyName: string, value: unknown): void {
  switch (keyName) {
    case 'displayname':
      // "For `displayname`, the value MUST be a string."
      if (typeof value !== 'string') throw Errors.badJson('displayname must be a string');
      if ([...value].length > MAX_DISPLAYNAME_LENGTH) throw Errors.invalidParam(`displayname must not exceed ${MAX_DISPLAYNAME_LENGTH} characters`);
      return;
    case 'avatar_url':
      // "For `avatar_url`, the value MUST be an MXC URI string." An empty string clears the avatar (what clients send to remove it).
      if (typeof value !== 'string') throw Errors.badJson('avatar_url must be a string');
      if (value.length > MAX_AVATAR_URL_LENGTH) throw Errors.invalidParam(`avatar_url must not exceed ${MAX_AVATAR_URL_LENGTH} characters`);
      if (value !== '' && !MXC_URI.test(value)) throw Errors.invalidParam('avatar_url must be an mxc:// URI');
      return;
    case 'm.tz':
      // "Servers MAY choose to validate the value": only its type is checked.
      if (typeof value !== 'string') throw Errors.badJson('m.tz must be a string');
      return;
    default:
      // "For custom keys, any JSON type is allowed."
      return;
  }
}

function checkProfileSize(fields: ProfileFields): ProfileFields {
  if (byteLength(JSON.stringify(fields)) >= MAX_PROFILE_BYTES) {
    throw new MatrixError(400, 'M_PROFILE_TOO_LARGE', 'The profile must stay under 64 KiB');
  }
  return fields;
}

/** Spec: data/api/client-server/profile.yaml ("Profiles"). */
@Controller(CLIENT_PREFIXES)
export class ProfileController {
  constructor(
    private readonly stores: UserDataStores,
    private readonly propagation: ProfilePropagation,
    @Inject(CONFIG) private readonly config: AtriumConfig,
    private readonly remote: RemoteProfiles,
  ) {}

  /**
   * GET /profile/{userId}: no access token needed. "When the requested user
   * does not exist, homeservers MAY choose whether to respond with 403 or
   * 404": Atrium answers 404 M_NOT_FOUND, as the response list gives for "this
   * user does not exist".
   */
  @Get('profile/:userId')
  async getProfile(@Param('userId') userId: string): Promise<ProfileFields> {
    if (this.isRemote(userId)) return this.remote.get(userId);
    await this.requireKnownUser(userId);
    return this.stores.profiles.get(userId);
  }

  /** GET /profile/{userId}/{keyName}: 404 "There is no profile field with this key for this user, or the user does not exist." */
  @Get('profile/:userId/:keyName')
  async getField(@Param('userId') userId: string, @Param('keyName') keyName: string): Promise<ProfileFields> {
    checkKey(keyName);
    if (this.isRemote(userId)) return this.remote.get(userId, keyName);
    await this.requireKnownUser(userId);
    const fields = await this.stores.profiles.get(userId);
    if (!Object.prototype.hasOwnProperty.call(fields, keyName)) throw Errors.notFound('Profile field not found');
    return { [keyName]: fields[keyName] };
  }

  /**
   * PUT /profile/{userId}/{keyName}: the body holds exactly the property
   * named `keyName`. A change of `displayname` or `avatar_url` is then
   * propagated ("Events on Change of Profile Information").
   */
  @Put('profile/:userId/:keyName')
  @UseGuards(AccessTokenGuard)
  @AllowGuests()
  async setField(
    @CurrentRequester() requester: Requester,
    @Param('userId') userId: string,
    @Param('keyName') keyName: string,
    @Body() rawBody: unknown,
  ): Promise<Record<string, never>> {
    checkKey(keyName);
    requireSelf(requester, userId, 'change the profile');
    this.refuseGuest(requester, keyName);
    const body = requireJsonObject(rawBody);
    if (!Object.prototype.hasOwnProperty.call(body, keyName)) throw Errors.missingParam(keyName);
    const value = body[keyName];
    checkValue(keyName, value);
    const { before, after } = await this.stores.profiles.update(userId, (fields) => checkProfileSize({ ...fields, [keyName]: value }));
    await this.propagation.afterChange(userId, before, after);
    return {};
  }

  /** DELETE /profile/{userId}/{keyName} (v1.16): "The profile field was deleted or it doesn't exist." */
  @Delete('profile/:userId/:keyName')
  @UseGuards(AccessTokenGuard)
  @AllowGuests()
  async deleteField(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Param('keyName') keyName: string): Promise<Record<string, never>> {
    checkKey(keyName);
    requireSelf(requester, userId, 'change the profile');
    this.refuseGuest(requester, keyName);
    const { before, after } = await this.stores.profiles.update(userId, (fields) => {
      const next = { ...fields };
      delete next[keyName];
      return next;
    });
    await this.propagation.afterChange(userId, before, after);
    return {};
  }

  /** Guest access: "Guest users may only modify their display name; other profile fields may not be changed." */
  private refuseGuest(requester: Requester, keyName: string): void {
    if (requester.isGuest && keyName !== 'displayname') throw Errors.guestAccessForbidden();
  }

  /** Another server's user (a user ID with a server name that is not ours): asked of that server (remote-profiles.ts). */
  private isRemote(userId: string): boolean {
    const server = domainOfId(userId);
    return userId.startsWith('@') && server !== undefined && server !== '' && server !== this.config.server_name;
  }

  /** Local users must exist. */
  private async requireKnownUser(userId: string): Promise<void> {
    if (domainOfId(userId) !== this.config.server_name || !(await this.stores.isLocalUser(userId))) {
      throw Errors.notFound('Profile not found');
    }
  }
}
