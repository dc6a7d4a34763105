import { Errors } from '@atrium/http';

/**
 * User IDs made or accepted at registration and login.
 * Spec: appendices "User Identifiers": localparts of new users use only
 * a-z, 0-9, `.`, `_`, `=`, `-`, `/` and `+`, and the whole ID is at most 255 bytes.
 */
const NEW_LOCALPART = /^[a-z0-9._=\-/+]+$/;

export function qualifyUserId(localpart: string, serverName: string): string {
  return `@${localpart}:${serverName}`;
}

/** Validates a requested username as a localpart for a new account; throws M_INVALID_USERNAME. */
export function checkNewLocalpart(localpart: string, serverName: string): void {
  if (localpart.length === 0) throw Errors.invalidUsername('Username must not be empty');
  if (!NEW_LOCALPART.test(localpart)) {
    throw Errors.invalidUsername('Usernames may only contain a-z, 0-9, and the characters . _ = - / +');
  }
  if (Buffer.byteLength(qualifyUserId(localpart, serverName), 'utf8') > 255) {
    throw Errors.invalidUsername('User ID must be at most 255 bytes');
  }
}

/**
 * The user a login identifier names: `m.id.user` takes "the fully qualified user
 * ID or just local part" (client-server-api "Matrix User ID"). Localparts are
 * matched case-insensitively because registration only creates lower case ones.
 * Returns null for a user of another server.
 */
export function userIdFromLogin(user: string, serverName: string): string | null {
  if (user.startsWith('@')) {
    const colon = user.indexOf(':');
    if (colon < 0) return null;
    if (user.slice(colon + 1) !== serverName) return null;
    return qualifyUserId(user.slice(1, colon).toLowerCase(), serverName);
  }
  return qualifyUserId(user.toLowerCase(), serverName);
}
