/**
 * Redaction per room version: content/rooms/fragments/v1-redactions.md,
 * v6-redactions.md, content/rooms/v8.md "Redactions", v9-redactions.md,
 * v11-redactions.md (also v12). Each test redacts an event holding every key
 * any version treats specially, and lists what must survive.
 */
import fc from 'fast-check';
import { referenceHash } from '../events/event-hashes';
import type { JsonObject, Pdu } from '../events/pdu';
import { ROOM_VERSIONS, type RoomVersionId } from '../room-versions';
import { redactEvent, redactionKeepsContentKeys } from './redact';

const TOP_LEVEL = {
  event_id: '$e:example.org',
  type: 'TYPE',
  room_id: '!r:example.org',
  sender: '@s:example.org',
  state_key: '',
  content: {},
  hashes: { sha256: 'h' },
  signatures: { 'example.org': { 'ed25519:1': 's' } },
  depth: 3,
  prev_events: [],
  prev_state: [],
  auth_events: [],
  origin: 'example.org',
  origin_server_ts: 1,
  membership: 'join',
  unsigned: { age: 1 },
  redacts: '$r:example.org',
  extra: 'x',
};

/** Every content key some version keeps, for every special type, plus junk. */
const CONTENT: Record<string, JsonObject> = {
  'm.room.member': {
    membership: 'join',
    join_authorised_via_users_server: '@a:example.org',
    third_party_invite: { signed: { mxid: '@c:example.org', token: 't', signatures: {} }, display_name: 'Carol' },
    displayname: 'Alice',
    avatar_url: 'mxc://x/y',
  },
  'm.room.create': { creator: '@s:example.org', room_version: '1', 'm.federate': true, predecessor: { room_id: '!old:x' } },
  'm.room.join_rules': { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: '!x:y' }], other: 1 },
  'm.room.power_levels': {
    ban: 50,
    events: { 'm.room.name': 50 },
    events_default: 0,
    invite: 0,
    kick: 50,
    redact: 50,
    state_default: 50,
    users: { '@s:example.org': 100 },
    users_default: 0,
    notifications: { room: 50 },
  },
  'm.room.aliases': { aliases: ['#a:example.org'] },
  'm.room.history_visibility': { history_visibility: 'shared', other: 1 },
  'm.room.redaction': { redacts: '$r:example.org', reason: 'spam' },
  'm.room.message': { body: 'hello', msgtype: 'm.text' },
};

function pick(content: JsonObject, keys: string[]): JsonObject {
  return Object.fromEntries(keys.filter((k) => k in content).map((k) => [k, content[k]]));
}

const V1_TOP = ['event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth', 'prev_events', 'prev_state', 'auth_events', 'origin', 'origin_server_ts', 'membership'];
const V11_TOP = ['event_id', 'type', 'room_id', 'sender', 'state_key', 'content', 'hashes', 'signatures', 'depth', 'prev_events', 'auth_events', 'origin_server_ts'];
const PL_V1 = ['ban', 'events', 'events_default', 'kick', 'redact', 'state_default', 'users', 'users_default'];

/** The expected content per type, written from each version's list. */
function expectedContent(version: RoomVersionId, type: string): JsonObject {
  const n = Number(version);
  const c = CONTENT[type];
  switch (type) {
    case 'm.room.member':
      if (n >= 11) {
        return {
          ...pick(c, ['membership', 'join_authorised_via_users_server']),
          third_party_invite: { signed: (c['third_party_invite'] as JsonObject)['signed'] },
        };
      }
      return pick(c, n >= 9 ? ['membership', 'join_authorised_via_users_server'] : ['membership']);
    case 'm.room.create':
      return n >= 11 ? c : pick(c, ['creator']);
    case 'm.room.join_rules':
      return pick(c, n >= 8 ? ['join_rule', 'allow'] : ['join_rule']);
    case 'm.room.power_levels':
      return pick(c, n >= 11 ? [...PL_V1, 'invite'] : PL_V1);
    case 'm.room.aliases':
      return n <= 5 ? pick(c, ['aliases']) : {};
    case 'm.room.history_visibility':
      return pick(c, ['history_visibility']);
    case 'm.room.redaction':
      return n >= 11 ? pick(c, ['redacts']) : {};
    default:
      return {};
  }
}

const VERSIONS = Object.keys(ROOM_VERSIONS) as RoomVersionId[];

describe.each(VERSIONS)('redaction in room version %s', (version) => {
  const topKeys = Number(version) >= 11 ? V11_TOP : V1_TOP;

  it.each(Object.keys(CONTENT))('%s keeps exactly the listed keys', (type) => {
    const event = { ...TOP_LEVEL, type, content: CONTENT[type] };
    const redacted = redactEvent(event, version) as unknown as Record<string, unknown>;
    expect(Object.keys(redacted).sort()).toEqual([...topKeys].sort());
    for (const key of topKeys) if (key !== 'content') expect(redacted[key]).toEqual((event as Record<string, unknown>)[key]);
    expect(redacted['content']).toEqual(expectedContent(version, type));
  });

  it('does not modify its input', () => {
    const event = { ...TOP_LEVEL, type: 'm.room.member', content: { ...CONTENT['m.room.member'] } };
    const before = JSON.stringify(event);
    redactEvent(event, ROOM_VERSIONS[version]);
    expect(JSON.stringify(event)).toBe(before);
  });
});

describe('redaction edge cases', () => {
  it('gives an empty content to an event without one, or with a non-object one', () => {
    expect(redactEvent({ type: 'm.room.member' }, '10')).toEqual({ type: 'm.room.member', content: {} });
    expect(redactEvent({ type: 'm.room.member', content: 'x' }, '10')).toEqual({ type: 'm.room.member', content: {} });
  });

  it('v11 keeps a third_party_invite object without signed as {}, and ignores a non-object one', () => {
    const member = (tpi: unknown) => redactEvent({ type: 'm.room.member', content: { membership: 'invite', third_party_invite: tpi } }, '11');
    expect(member({ display_name: 'x' })).toEqual({ type: 'm.room.member', content: { membership: 'invite', third_party_invite: {} } });
    expect(member('nope')).toEqual({ type: 'm.room.member', content: { membership: 'invite' } });
  });

  it('does not look up content rules through the prototype chain', () => {
    expect(redactEvent({ type: 'constructor', content: { a: 1 } }, '11')).toEqual({ type: 'constructor', content: {} });
  });

  it('describes the kept content keys', () => {
    expect(redactionKeepsContentKeys('m.room.create', '11')).toBe('*');
    expect(redactionKeepsContentKeys('m.room.member', '11')).toEqual(['membership', 'join_authorised_via_users_server', 'third_party_invite.signed']);
    expect(redactionKeepsContentKeys('m.room.aliases', '5')).toEqual(['aliases']);
    expect(redactionKeepsContentKeys('m.room.message', '1')).toEqual([]);
    expect(() => redactEvent({}, '99' as RoomVersionId)).toThrow(/unknown room version/);
  });
});

describe('redaction properties', () => {
  const specialType = fc.constantFrom(...Object.keys(CONTENT), 'm.custom');
  const contentKey = fc.constantFrom(
    ...new Set([...Object.values(CONTENT).flatMap((c) => Object.keys(c)), 'x', 'y']),
  );
  const event = fc.record({
    version: fc.constantFrom(...VERSIONS.filter((v) => ROOM_VERSIONS[v].eventIdFormat !== 'explicit')),
    type: specialType,
    content: fc.dictionary(
      contentKey,
      fc.oneof(
        fc.string(),
        fc.integer(),
        fc.boolean(),
        fc.constant(null),
        fc.array(fc.string(), { maxLength: 3 }),
        fc.dictionary(fc.string(), fc.integer(), { maxKeys: 3 }),
      ),
      { maxKeys: 6 },
    ),
    topExtras: fc.subarray(['origin', 'membership', 'prev_state', 'unsigned', 'redacts', 'extra'] as const),
    depth: fc.integer({ min: 1, max: 1000 }),
  });

  it('redacting an already redacted event changes nothing, so its reference hash is unchanged', () => {
    fc.assert(
      fc.property(event, ({ version, type, content, topExtras, depth }) => {
        const pdu: Record<string, unknown> = {
          room_id: '!r:example.org',
          sender: '@s:example.org',
          type,
          content,
          depth,
          origin_server_ts: 1,
          prev_events: [],
          auth_events: [],
          hashes: { sha256: 'h' },
          signatures: {},
        };
        for (const key of topExtras) pdu[key] = (TOP_LEVEL as Record<string, unknown>)[key];
        const once = redactEvent(pdu, version);
        const twice = redactEvent(once, version);
        expect(twice).toEqual(once);
        // The content hash no longer matches, but the reference hash (and so the event ID) is the same.
        expect(referenceHash(once as unknown as Pdu, version).equals(referenceHash(pdu as unknown as Pdu, version))).toBe(true);
      }),
      { numRuns: 400 },
    );
  });
});
