import { Global, Injectable, Module } from '@nestjs/common';
import { Errors } from '@atrium/http';
import { isValidUserId } from '@atrium/matrix';
import { UserDataStores } from '../user/user-data.stores';

/**
 * "Ignoring Users" (client-server-api modules/ignore_users.md): the
 * `m.ignored_user_list` global account data names the users whose events the
 * user no longer receives. /sync, /messages and /context read the list on
 * every request through IgnoredUsers, so "following an update of the
 * m.ignored_user_list, the sync API for all clients should immediately start
 * ignoring (or un-ignoring) the user" holds with no cache to invalidate.
 */
export const IGNORED_USER_LIST = 'm.ignored_user_list';

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks content PUT as `m.ignored_user_list`. The spec does not demand a
 * check (account-data.yaml refuses only bodies that are not JSON objects),
 * but the event schema makes `ignored_users` a required "mapping of user ID
 * to empty object", and content the server cannot read would silently ignore
 * nobody. So: `ignored_users` missing or not an object, or a value that is
 * not an object, is 400 M_BAD_JSON (the endpoint's code for a malformed
 * body); a key that is not a user ID is 400 M_INVALID_PARAM.
 */
export function validateIgnoredUserList(content: Json): void {
  const users = content['ignored_users'];
  if (users === undefined) throw Errors.badJson('m.ignored_user_list needs "ignored_users"');
  if (!isObject(users)) throw Errors.badJson('"ignored_users" must be an object of user IDs to objects');
  for (const [userId, value] of Object.entries(users)) {
    if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`"ignored_users" key ${JSON.stringify(userId.slice(0, 100))} is not a user ID`);
    if (!isObject(value)) throw Errors.badJson(`"ignored_users" value of ${userId} must be an object`);
  }
}

/**
 * The users `userId` ignores, read leniently from stored content (anything
 * stored before the check existed): keys of `ignored_users` that look like
 * user IDs. A user never ignores themselves: their own events always reach
 * them.
 */
export function ignoredUsersOf(userId: string, content: Json | null): Set<string> {
  const out = new Set<string>();
  const users = content?.['ignored_users'];
  if (!isObject(users)) return out;
  for (const key of Object.keys(users)) if (key.startsWith('@') && key !== userId) out.add(key);
  return out;
}

/** Reads a user's ignored users for the sync and history endpoints. */
@Injectable()
export class IgnoredUsers {
  constructor(private readonly stores: UserDataStores) {}

  async of(userId: string): Promise<Set<string>> {
    return ignoredUsersOf(userId, await this.stores.accountData.get(userId, null, IGNORED_USER_LIST));
  }
}

/**
 * Global so that the sync module can inject IgnoredUsers without importing
 * this module (UserDataStores, which it reads through, is global too).
 */
@Global()
@Module({ providers: [IgnoredUsers], exports: [IgnoredUsers] })
export class IgnoredUsersModule {}
