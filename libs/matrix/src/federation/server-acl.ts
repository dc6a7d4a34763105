/**
 * Server ACLs. Spec: data/event-schemas/schema/m.room.server_acl.yaml (the
 * order of the checks), client-server-api "Server Access Control Lists (ACLs)
 * for rooms", server-server-api "Server Access Control Lists (ACLs)" (which
 * endpoints apply them), appendices "Glob-style matching".
 */
import type { JsonObject, JsonValue } from '../events/pdu';
import { parseServerName } from '../identifiers';

/**
 * A case-insensitive glob (`*` any run of characters, `?` exactly one) as a
 * regular expression anchored at both ends; every other character is literal.
 */
export function aclGlobToRegExp(glob: string): RegExp {
  let source = '';
  for (const ch of glob) {
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else source += ch.replace(/[\\^$.|+()[\]{}/-]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 'is');
}

function patterns(value: JsonValue | undefined): RegExp[] {
  // "allow"/"deny": arrays of strings; anything else counts as the empty list.
  if (!Array.isArray(value)) return [];
  return value.filter((p): p is string => typeof p === 'string').map(aclGlobToRegExp);
}

/**
 * Whether `serverName` may take part in a room whose m.room.server_acl
 * content is `acl` (undefined: no ACL event in the room state). The port is
 * never considered ("evil.com, evil.com:8448 and evil.com:1234 would all match
 * rules that apply to evil.com"). In the spec's order:
 * 1. no m.room.server_acl event: allow;
 * 2. an IP literal, with `allow_ip_literals` present and false: deny;
 * 3. a match in `deny`: deny;
 * 4. a match in `allow`: allow;
 * 5. otherwise deny.
 */
export function serverAclAllows(acl: JsonObject | undefined, serverName: string): boolean {
  if (acl === undefined) return true;
  const parsed = parseServerName(serverName);
  // A name that is not a server name matches no rule meant for one: deny.
  if (!parsed) return false;
  const host = parsed.host;
  // "Defaults to true if missing or otherwise not a boolean."
  if (parsed.hostType !== 'dns' && acl['allow_ip_literals'] === false) return false;
  if (patterns(acl['deny']).some((re) => re.test(host))) return false;
  return patterns(acl['allow']).some((re) => re.test(host));
}
