/**
 * The small pieces of identifier grammar the authorization rules need.
 * Spec: content/appendices.md ("Server Name", "User Identifiers",
 * "Historical User IDs").
 */

/**
 * The server name of a user ID, room ID (v1–v11) or event ID (v1–v2): what
 * follows the first `:`. appendices.md: "the domain of a user ID is the server
 * name"; localparts never contain `:`, so the first colon separates them.
 */
export function domainOf(id: string): string | undefined {
  const colon = id.indexOf(':');
  return colon < 0 ? undefined : id.slice(colon + 1);
}

/**
 * appendices.md "Server Name": `hostname [ ":" port ]`, where hostname is an
 * IPv4 literal, a bracketed IPv6 literal or a DNS name of `[A-Za-z0-9.-]`,
 * at most 255 characters.
 */
export function isValidServerName(name: string): boolean {
  const match = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,255})(?::(\d{1,5}))?$/.exec(name);
  if (!match) return false;
  return match[2] === undefined || Number(match[2]) <= 65535;
}

/**
 * A user ID as events must accept it. appendices.md "Historical User IDs":
 * "servers MUST accept user IDs with localparts consisting of any legal
 * non-surrogate Unicode code points except for `:` and `NUL` (U+0000),
 * including other control characters and the empty string." So this checks
 * the sigil, the separator and the server name, not the modern localpart
 * grammar, and the 255-byte limit of the whole ID.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isValidUserId(id: string): boolean {
  if (!id.startsWith('@')) return false;
  const colon = id.indexOf(':');
  if (colon < 0) return false;
  const localpart = id.slice(1, colon);
  if (localpart.includes('\u0000') || LONE_SURROGATE.test(localpart)) return false;
  if (Buffer.byteLength(id, 'utf8') > 255) return false;
  return isValidServerName(id.slice(colon + 1));
}
