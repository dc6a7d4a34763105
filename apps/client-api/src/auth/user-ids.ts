import { Errors } from '@atrium/http';
import { validateRegistrationLocalpart } from '@atrium/matrix';

/** User IDs made or accepted at registration and login. */
export function qualifyUserId(localpart: string, serverName: string): string {
  return `@${localpart}:${serverName}`;
}

/**
 * Validates a requested username as a localpart for a new account (appendices
 * "User Identifiers", via @atrium/matrix); throws M_INVALID_USERNAME.
 */
export function checkNewLocalpart(localpart: string, serverName: string): void {
  const check = validateRegistrationLocalpart(localpart, serverName);
  if (!check.ok) throw Errors.invalidUsername(check.error);
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
