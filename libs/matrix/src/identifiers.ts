/**
 * Identifier grammar.
 * Spec: content/appendices.md "Identifier Grammar": "Common Namespaced
 * Identifier Grammar", "Server Name", "Common Identifier Format", "User
 * Identifiers", "Historical User IDs", "Room IDs", "Room Aliases", "Event
 * IDs", "Opaque Identifiers"; room-version specific forms in
 * content/rooms/fragments/v1-event-ids.md, content/rooms/v3.md "Event IDs",
 * rooms/fragments/v4-event-ids.md and content/rooms/v12.md.
 */
import { isIPv6 } from 'node:net';
import type { RoomVersion } from './room-versions';

/** IDs, with sigil and domain, "MUST NOT exceed 255 bytes" (user IDs, room IDs, aliases, event IDs). */
export const MAX_ID_BYTES = 255;

function isWellFormed(s: string): boolean {
  return (s as unknown as { isWellFormed(): boolean }).isWellFormed();
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// ---------------------------------------------------------------------------
// Server names
// ---------------------------------------------------------------------------

export interface ServerName {
  /** The hostname as written; an IPv6 literal keeps its brackets (`[::1]`). */
  host: string;
  hostType: 'dns' | 'ipv4' | 'ipv6';
  port?: number;
}

const IPV4_SHAPE = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
const DNS_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const IPV6_CHARS = /^[0-9A-Fa-f:.]{2,45}$/;

/**
 * Parses `hostname [ ":" port ]` (appendices.md "Server Name"). An IPv4
 * literal must have four numbers 0–255 (a dotted quad out of range is
 * refused rather than read as a DNS name); an IPv6 literal, in brackets, must
 * be an RFC 3513 address; a DNS name is 1–255 of `[A-Za-z0-9.-]`. The port is
 * 1–5 digits and at most 65535. Case is kept: server names compare
 * case-sensitively.
 */
export function parseServerName(name: string): ServerName | undefined {
  let host = name;
  let port: number | undefined;
  if (name.startsWith('[')) {
    const close = name.indexOf(']');
    if (close < 0) return undefined;
    host = name.slice(0, close + 1);
    const rest = name.slice(close + 1);
    if (rest !== '') {
      if (!/^:\d{1,5}$/.test(rest)) return undefined;
      port = Number(rest.slice(1));
    }
    const literal = host.slice(1, -1);
    if (!IPV6_CHARS.test(literal) || !isIPv6(literal)) return undefined;
    if (port !== undefined && port > 65535) return undefined;
    return port === undefined ? { host, hostType: 'ipv6' } : { host, hostType: 'ipv6', port };
  }
  const colon = name.lastIndexOf(':');
  if (colon >= 0) {
    const digits = name.slice(colon + 1);
    if (!/^\d{1,5}$/.test(digits)) return undefined;
    port = Number(digits);
    if (port > 65535) return undefined;
    host = name.slice(0, colon);
  }
  const quad = IPV4_SHAPE.exec(host);
  if (quad) {
    for (let i = 1; i <= 4; i++) if (Number(quad[i]) > 255) return undefined;
    return port === undefined ? { host, hostType: 'ipv4' } : { host, hostType: 'ipv4', port };
  }
  if (!DNS_NAME.test(host)) return undefined;
  return port === undefined ? { host, hostType: 'dns' } : { host, hostType: 'dns', port };
}

export function isValidServerName(name: string): boolean {
  return parseServerName(name) !== undefined;
}

// ---------------------------------------------------------------------------
// Common identifier format: &localpart:domain
// ---------------------------------------------------------------------------

export interface IdParts {
  localpart: string;
  /** The server name. */
  domain: string;
}

/**
 * The server name of an `&localpart:domain` identifier: what follows the
 * first `:` (localparts never contain `:`). No validation; undefined when
 * there is no colon.
 */
export function domainOfId(id: string): string | undefined {
  const colon = id.indexOf(':');
  return colon < 0 ? undefined : id.slice(colon + 1);
}

/** Splits `&localpart:domain` with the sigil checked, the domain a valid server name and the 255-byte limit. */
function splitId(id: string, sigil: string): IdParts | undefined {
  if (!id.startsWith(sigil)) return undefined;
  const colon = id.indexOf(':');
  if (colon < 0) return undefined;
  if (byteLength(id) > MAX_ID_BYTES) return undefined;
  const domain = id.slice(colon + 1);
  if (!isValidServerName(domain)) return undefined;
  return { localpart: id.slice(1, colon), domain };
}

/** A localpart of "any valid non-surrogate Unicode code points except `:` and NUL". */
function isLenientLocalpart(localpart: string): boolean {
  return !localpart.includes('\u0000') && !localpart.includes(':') && isWellFormed(localpart);
}

// ---------------------------------------------------------------------------
// User IDs
// ---------------------------------------------------------------------------

/** appendices.md "User Identifiers": `a-z`, `0-9`, `.`, `_`, `=`, `-`, `/`, `+`, not empty. */
const STRICT_USER_LOCALPART = /^[a-z0-9._=\-/+]+$/;

/**
 * - `strict`: the grammar for new user IDs (appendices.md "User Identifiers").
 * - `historical`: what servers "MUST accept" in events
 *   ("Historical User IDs"): any non-surrogate code points except `:` and
 *   NUL, including the empty localpart.
 */
export type UserIdGrammar = 'strict' | 'historical';

export function parseUserId(id: string, grammar: UserIdGrammar): IdParts | undefined {
  const parts = splitId(id, '@');
  if (!parts) return undefined;
  const ok = grammar === 'strict' ? STRICT_USER_LOCALPART.test(parts.localpart) : isLenientLocalpart(parts.localpart);
  return ok ? parts : undefined;
}

export function isValidUserId(id: string, grammar: UserIdGrammar): boolean {
  return parseUserId(id, grammar) !== undefined;
}

/**
 * How a user ID stands against appendices.md "User Identifiers" and
 * "Historical User IDs":
 * - `strict`: meets the grammar for new user IDs;
 * - `compliant`: historical, but only U+0021–U+007E and not empty;
 * - `non-compliant`: other characters or empty: accepted in events, but "SHOULD
 *   NOT" be forwarded to clients outside an event context;
 * - `invalid`: not even a historical user ID.
 */
export function userIdCompliance(id: string): 'strict' | 'compliant' | 'non-compliant' | 'invalid' {
  const parts = parseUserId(id, 'historical');
  if (!parts) return 'invalid';
  if (STRICT_USER_LOCALPART.test(parts.localpart)) return 'strict';
  return /^[\u0021-\u007e]+$/.test(parts.localpart) ? 'compliant' : 'non-compliant';
}

export type LocalpartCheck = { ok: true; userId: string } | { ok: false; errcode: 'M_INVALID_USERNAME'; error: string };

/**
 * Checks a localpart a user asks to register under `serverName`: the strict
 * user ID grammar (so no upper case; "requiring homeservers to downcase
 * usernames" is the caller's choice before calling) and the 255-byte limit of
 * the whole user ID. The error is what `/register` answers.
 */
export function validateRegistrationLocalpart(localpart: string, serverName: string): LocalpartCheck {
  if (localpart === '') return { ok: false, errcode: 'M_INVALID_USERNAME', error: 'The username must not be empty' };
  if (!STRICT_USER_LOCALPART.test(localpart)) {
    return {
      ok: false,
      errcode: 'M_INVALID_USERNAME',
      error: 'The username may only contain a-z, 0-9, ".", "_", "=", "-", "/" and "+"',
    };
  }
  const userId = `@${localpart}:${serverName}`;
  if (byteLength(userId) > MAX_ID_BYTES) {
    return { ok: false, errcode: 'M_INVALID_USERNAME', error: `The user ID must not exceed ${MAX_ID_BYTES} bytes` };
  }
  return { ok: true, userId };
}

// ---------------------------------------------------------------------------
// Room IDs, aliases, event IDs
// ---------------------------------------------------------------------------

/** A reference hash in unpadded Base64: 32 bytes are 43 characters. */
const HASH_STANDARD = /^[A-Za-z0-9+/]{43}$/;
const HASH_URL_SAFE = /^[A-Za-z0-9_-]{43}$/;

export type ParsedRoomId = ({ kind: 'domain' } & IdParts) | { kind: 'hash'; hash: string };

/**
 * Room IDs (appendices.md "Room IDs"): `!opaque_id:domain` before room
 * version 12, `!` + the create event's reference hash (URL-safe Base64) in
 * v12. With a version, only that version's form is accepted.
 */
export function parseRoomId(id: string, version?: RoomVersion): ParsedRoomId | undefined {
  if (!id.startsWith('!')) return undefined;
  if (version === undefined || version.roomIdFromCreateEvent) {
    const hash = id.slice(1);
    if (HASH_URL_SAFE.test(hash)) return { kind: 'hash', hash };
    if (version !== undefined) return undefined;
  }
  const parts = splitId(id, '!');
  if (!parts || !isLenientLocalpart(parts.localpart)) return undefined;
  return { kind: 'domain', ...parts };
}

export function isValidRoomId(id: string, version?: RoomVersion): boolean {
  return parseRoomId(id, version) !== undefined;
}

/** `#room_alias:domain`: any non-surrogate code points but `:` and NUL, 255 bytes in all. */
export function parseRoomAlias(alias: string): IdParts | undefined {
  const parts = splitId(alias, '#');
  return parts && isLenientLocalpart(parts.localpart) ? parts : undefined;
}

export function isValidRoomAlias(alias: string): boolean {
  return parseRoomAlias(alias) !== undefined;
}

export type ParsedEventId = ({ kind: 'domain' } & IdParts) | { kind: 'hash'; hash: string };

/**
 * Event IDs (appendices.md "Event IDs", at most 255 bytes): `$opaque_id:domain`
 * in rooms v1–v2; `$` + reference hash in standard unpadded Base64 in v3 and
 * URL-safe in v4+. Without a version any of the three forms is accepted.
 */
export function parseEventId(id: string, version?: RoomVersion): ParsedEventId | undefined {
  if (!id.startsWith('$')) return undefined;
  const format = version?.eventIdFormat;
  const hash = id.slice(1);
  if ((format === undefined || format === 'hash-base64') && HASH_STANDARD.test(hash)) return { kind: 'hash', hash };
  if ((format === undefined || format === 'hash-urlsafe') && HASH_URL_SAFE.test(hash)) return { kind: 'hash', hash };
  if (format !== undefined && format !== 'explicit') return undefined;
  const parts = splitId(id, '$');
  if (!parts || parts.localpart === '' || !isLenientLocalpart(parts.localpart)) return undefined;
  return { kind: 'domain', ...parts };
}

export function isValidEventId(id: string, version?: RoomVersion): boolean {
  return parseEventId(id, version) !== undefined;
}

// ---------------------------------------------------------------------------
// Opaque and namespaced identifiers
// ---------------------------------------------------------------------------

/** appendices.md "Opaque Identifiers": `[0-9A-Za-z-._~]`, 1–255 characters unless a use says otherwise. */
export function isValidOpaqueId(id: string, maxLength = 255): boolean {
  return id.length >= 1 && id.length <= maxLength && /^[0-9A-Za-z._~-]+$/.test(id);
}

/**
 * appendices.md "Common Namespaced Identifier Grammar": 1–255 characters,
 * starting with `[a-z]`, made of `[a-z0-9._-]`.
 */
export function isValidNamespacedIdentifier(id: string): boolean {
  return id.length >= 1 && id.length <= 255 && /^[a-z][a-z0-9._-]*$/.test(id);
}

/** "Identifiers starting with the characters `m.` are reserved for use by the official Matrix specification." */
export function isReservedNamespacedIdentifier(id: string): boolean {
  return id.startsWith('m.');
}
