/**
 * The rules around the member and power levels rules: m.room.create, the room
 * ID (v12), auth events, m.federate, m.room.aliases (v1–v5), the joined-sender
 * rule, required power, state keys naming users, and redactions (v1–v2 in the
 * rules, v3+ when shown).
 */
import type { JsonObject, RoomEvent } from '../events/pdu';
import { ROOM_VERSIONS } from '../room-versions';
import { authEventKeys, checkAuthEvents } from './auth-events';
import { authorizeEvent } from './authorize';
import { redactionApplies } from './redaction-check';
import { ALL_VERSIONS, TestRoom, createRoom, user, verdict, versionsWhere, withCreator, type Draft } from './testing';

/** Number of the "sender must be joined" rule on each version's page. */
const joinedRule = (id: string): string => (['1', '2', '3', '4', '5', '12'].includes(id) ? '6' : '5');
const shift = (id: string, n: number): string => String(Number(joinedRule(id)) + n);

describe('m.room.create', () => {
  it.each(ALL_VERSIONS)('v%s: a well-formed create event is allowed', (id) => {
    expect(() => createRoom(id)).not.toThrow();
  });

  it.each(ALL_VERSIONS)('v%s: prev_events are rejected (1.1); an unknown room_version is rejected (1.3)', (id) => {
    const room = new TestRoom(id);
    const content: JsonObject = ROOM_VERSIONS[id].implicitRoomCreator ? {} : { creator: user('alice') };
    expect(verdict(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content, prev: ['$0:example.org'] }))).toBe('deny 1.1 m.room.create/prev_events');
    expect(verdict(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content: { ...content, room_version: '99' } }))).toBe('deny 1.3 m.room.create/room_version');
    expect(verdict(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content: { ...content, room_version: 12 } }))).toBe('deny 1.3 m.room.create/room_version');
    // An absent room_version is fine (it means "1").
    expect(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content })).toEqual({ allowed: true });
  });

  const explicitCreator = versionsWhere((v) => !v.implicitRoomCreator);
  it.each(explicitCreator.yes)('v%s: content.creator is required (1.4)', (id) => {
    const room = new TestRoom(id);
    expect(verdict(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content: { room_version: id } }))).toBe('deny 1.4 m.room.create/creator');
  });
  it.each(explicitCreator.no)('v%s: content.creator is not needed', (id) => {
    const room = new TestRoom(id);
    expect(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content: { room_version: id } })).toEqual({ allowed: true });
  });

  const domainRoomIds = versionsWhere((v) => !v.roomIdFromCreateEvent);
  it.each(domainRoomIds.yes)('v%s: the room ID must be on the sender\'s server (1.2)', (id) => {
    const room = new TestRoom(id);
    const content: JsonObject = ROOM_VERSIONS[id].implicitRoomCreator ? {} : { creator: user('alice') };
    expect(verdict(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content, roomId: '!room:elsewhere.org' }))).toBe('deny 1.2 m.room.create/room_id');
  });

  it('v12: a create event carrying a room_id is rejected (1.2); additional_creators must be user IDs (1.4)', () => {
    const room = new TestRoom('12');
    expect(verdict(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content: {}, roomId: '!room:example.org', eventId: '$abc' }))).toBe('deny 1.2 m.room.create/room_id');
    expect(room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content: { additional_creators: [user('bob')] }, eventId: '$abc' })).toEqual({ allowed: true });
    for (const bad of [user('bob'), ['bob'], [42], ['@bob'], [user('bob'), null]]) {
      const result = room.check({ type: 'm.room.create', sender: 'alice', stateKey: '', content: { additional_creators: bad }, eventId: '$abc' });
      expect([bad, verdict(result)]).toEqual([bad, 'deny 1.4 m.room.create/additional_creators']);
    }
  });
});

describe('room ID and auth events', () => {
  it('v12: an event whose room ID does not name the create event is rejected (rule 2)', () => {
    const room = createRoom('12');
    expect(verdict(room.check({ type: 'm.room.message', sender: 'alice', content: {}, roomId: '!elsewhere' }))).toBe('deny 2 room_id/not-create-event');
    expect(room.check({ type: 'm.room.message', sender: 'alice', content: {} })).toEqual({ allowed: true });
  });

  it.each(versionsWhere((v) => !v.roomIdFromCreateEvent).yes)('v%s: no create event in the auth state is rejected (2.4)', (id) => {
    const room = createRoom(id);
    const event = room.build({ type: 'm.room.message', sender: 'alice', content: {} });
    const withoutCreate = (type: string, key: string): RoomEvent | undefined => (type === 'm.room.create' ? undefined : room.lookup(type, key));
    expect(verdict(authorizeEvent(event, withoutCreate, room.version))).toBe('deny 2.4 auth_events/no-create');
  });

  it.each(ALL_VERSIONS)('v%s: an auth event from another room is rejected', (id) => {
    const room = createRoom(id);
    const event = room.build({ type: 'm.room.message', sender: 'alice', content: {} });
    const power = room.lookup('m.room.power_levels', '') as RoomEvent;
    const foreign = { ...power, room_id: '!other:example.org' };
    const lookup = (type: string, key: string): RoomEvent | undefined => (type === 'm.room.power_levels' ? foreign : room.lookup(type, key));
    expect(verdict(authorizeEvent(event, lookup, room.version))).toBe(id === '12' ? 'deny 3.4 auth_events/wrong-room' : 'deny 2.5 auth_events/wrong-room');
  });

  it.each(ALL_VERSIONS)('v%s: m.federate false keeps other servers out (rule 3/4)', (id) => {
    const room = createRoom(id, { createContent: { 'm.federate': false } });
    const result = room.check(room.member('@bob:other.example', 'join'));
    expect(verdict(result)).toBe(`deny ${id === '12' ? '4' : '3'} m.federate`);
    expect(room.membership('bob', 'join')).toEqual({ allowed: true });
  });
});

describe('auth events selection', () => {
  it('picks create (not in v12), power levels, sender and target members, join rules, third-party invite, authoriser', () => {
    const join = { type: 'm.room.member', state_key: user('bob'), sender: user('bob'), content: { membership: 'join', join_authorised_via_users_server: user('carol') } };
    expect(authEventKeys(join, ROOM_VERSIONS['8'])).toEqual([
      ['m.room.create', ''],
      ['m.room.power_levels', ''],
      ['m.room.member', user('bob')],
      ['m.room.join_rules', ''],
      ['m.room.member', user('carol')],
    ]);
    // Before v8 the authoriser is not selected; in v12 the create event is not.
    expect(authEventKeys(join, ROOM_VERSIONS['7'])).toHaveLength(4);
    expect(authEventKeys(join, ROOM_VERSIONS['12'])).toEqual([
      ['m.room.power_levels', ''],
      ['m.room.member', user('bob')],
      ['m.room.join_rules', ''],
      ['m.room.member', user('carol')],
    ]);
    const invite = { type: 'm.room.member', state_key: user('bob'), sender: user('alice'), content: { membership: 'invite', third_party_invite: { signed: { token: 'tok' } } } };
    expect(authEventKeys(invite, ROOM_VERSIONS['1'])).toEqual([
      ['m.room.create', ''],
      ['m.room.power_levels', ''],
      ['m.room.member', user('alice')],
      ['m.room.member', user('bob')],
      ['m.room.join_rules', ''],
      ['m.room.third_party_invite', 'tok'],
    ]);
    const leave = { type: 'm.room.member', state_key: user('bob'), sender: user('alice'), content: { membership: 'leave' } };
    expect(authEventKeys(leave, ROOM_VERSIONS['10'])).toEqual([
      ['m.room.create', ''],
      ['m.room.power_levels', ''],
      ['m.room.member', user('alice')],
      ['m.room.member', user('bob')],
    ]);
    expect(authEventKeys({ type: 'm.room.create', sender: user('alice'), state_key: '', content: {} }, ROOM_VERSIONS['10'])).toEqual([]);
  });

  it.each(ALL_VERSIONS)('v%s: checkAuthEvents: duplicates, unselected entries, missing create, other rooms', (id) => {
    const room = createRoom(id);
    const version = room.version;
    const s = id === '12' ? '3' : '2';
    const event = room.build({ type: 'm.room.message', sender: 'alice', content: {} });
    const create = room.lookup('m.room.create', '') as RoomEvent;
    const power = room.lookup('m.room.power_levels', '') as RoomEvent;
    const member = room.lookup('m.room.member', user('alice')) as RoomEvent;
    const joinRules = room.lookup('m.room.join_rules', '') as RoomEvent;
    const good = id === '12' ? [power, member] : [create, power, member];
    expect(checkAuthEvents(event, good, version)).toEqual({ ok: true });
    expect(checkAuthEvents(event, [...good, power], version)).toMatchObject({ ok: false, rule: `${s}.1` });
    // Join rules are not selected for a message.
    expect(checkAuthEvents(event, [...good, joinRules], version)).toMatchObject({ ok: false, rule: `${s}.2` });
    if (id === '12') {
      // v12: the create event MUST NOT be selected.
      expect(checkAuthEvents(event, [create, ...good], version)).toMatchObject({ ok: false, rule: '3.2' });
    } else {
      expect(checkAuthEvents(event, [power, member], version)).toMatchObject({ ok: false, rule: '2.4' });
    }
    expect(checkAuthEvents(event, [...good.slice(0, -1), { ...member, room_id: '!x:example.org' }], version)).toMatchObject({
      ok: false,
      check: 'auth_events/wrong-room',
    });
  });
});

describe('m.room.aliases', () => {
  const special = versionsWhere((v) => v.specialCaseAliasesAuth);
  it.each(special.yes)('v%s: any server may set aliases for its own domain, even unjoined; not for another domain', (id) => {
    const room = createRoom(id);
    expect(room.check({ type: 'm.room.aliases', sender: '@bob:other.example', stateKey: 'other.example', content: { aliases: ['#a:other.example'] } })).toEqual({ allowed: true });
    expect(verdict(room.check({ type: 'm.room.aliases', sender: '@bob:other.example', stateKey: 'example.org', content: { aliases: [] } }))).toBe('deny 4.2 m.room.aliases/domain');
    expect(verdict(room.check({ type: 'm.room.aliases', sender: '@bob:other.example', content: { aliases: [] } }))).toBe('deny 4.1 m.room.aliases/no-state-key');
  });

  it.each(special.no)('v%s: m.room.aliases is an ordinary state event', (id) => {
    const room = createRoom(id);
    expect(verdict(room.check({ type: 'm.room.aliases', sender: '@bob:other.example', stateKey: 'other.example', content: { aliases: [] } }))).toBe(`deny ${joinedRule(id)} sender/not-joined`);
    room.membership('bob', 'join');
    // Joined, but below state_default (50).
    expect(verdict(room.check({ type: 'm.room.aliases', sender: 'bob', stateKey: 'example.org', content: { aliases: [] } }))).toBe(`deny ${shift(id, 2)} sender/power`);
    expect(room.check({ type: 'm.room.aliases', sender: 'alice', stateKey: 'elsewhere.org', content: { aliases: [] } })).toEqual({ allowed: true });
  });
});

describe('senders and required power', () => {
  it.each(ALL_VERSIONS)('v%s: events from a sender who is not joined are rejected', (id) => {
    const room = createRoom(id);
    expect(verdict(room.check({ type: 'm.room.message', sender: 'bob', content: { body: 'hi' } }))).toBe(`deny ${joinedRule(id)} sender/not-joined`);
    room.membership('alice', 'invite', 'bob');
    expect(verdict(room.check({ type: 'm.room.message', sender: 'bob', content: { body: 'hi' } }))).toBe(`deny ${joinedRule(id)} sender/not-joined`);
    room.membership('bob', 'join');
    expect(room.check({ type: 'm.room.message', sender: 'bob', content: { body: 'hi' } })).toEqual({ allowed: true });
    room.membership('bob', 'leave');
    expect(verdict(room.check({ type: 'm.room.message', sender: 'bob', content: { body: 'hi' } }))).toBe(`deny ${joinedRule(id)} sender/not-joined`);
  });

  it.each(ALL_VERSIONS)('v%s: state needs state_default, messages events_default, specific types their own level', (id) => {
    const room = createRoom(id, { users: withCreator(id, { bob: 10 }), powerLevels: { events_default: 10, events: { 'm.reaction': 20 } } });
    room.membership('bob', 'join');
    room.membership('carol', 'join');
    expect(room.check({ type: 'm.room.message', sender: 'bob', content: {} })).toEqual({ allowed: true });
    expect(verdict(room.check({ type: 'm.room.message', sender: 'carol', content: {} }))).toBe(`deny ${shift(id, 2)} sender/power`);
    expect(verdict(room.check({ type: 'm.reaction', sender: 'bob', content: {} }))).toBe(`deny ${shift(id, 2)} sender/power`);
    expect(verdict(room.check({ type: 'm.room.topic', sender: 'bob', stateKey: '', content: {} }))).toBe(`deny ${shift(id, 2)} sender/power`);
  });

  it.each(ALL_VERSIONS)('v%s: a state key naming another user is rejected; one\'s own is allowed', (id) => {
    const room = createRoom(id, { powerLevels: { state_default: 0 } });
    room.membership('bob', 'join');
    expect(verdict(room.check({ type: 'org.example.status', sender: 'bob', stateKey: user('alice'), content: {} }))).toBe(`deny ${shift(id, 3)} state_key/other-user`);
    expect(room.check({ type: 'org.example.status', sender: 'bob', stateKey: user('bob'), content: {} })).toEqual({ allowed: true });
  });
});

describe('redactions', () => {
  const inRules = versionsWhere((v) => !v.redactionCheckedAtDisplay);
  it.each(inRules.yes)('v%s: rule 11: the redact level, or an event from the same server', (id) => {
    const room = createRoom(id);
    room.membership('bob', 'join');
    const own = room.check({ type: 'm.room.redaction', sender: 'bob', content: {}, redacts: '$1:example.org' });
    expect(own).toEqual({ allowed: true });
    const foreign = room.check({ type: 'm.room.redaction', sender: 'bob', content: {}, redacts: '$1:other.example' });
    expect(verdict(foreign)).toBe('deny 11.3 m.room.redaction/power');
    expect(room.check({ type: 'm.room.redaction', sender: 'alice', content: {}, redacts: '$1:other.example' })).toEqual({ allowed: true });
  });

  it.each(inRules.no)('v%s: the rules accept any redaction the sender may send; applying it is decided later', (id) => {
    const room = createRoom(id);
    room.membership('bob', 'join');
    room.membership('@carol:other.example', 'join');
    const redactsField: Pick<Draft, 'content' | 'redacts'> = ROOM_VERSIONS[id].redactsInContent ? { content: { redacts: '$x' } } : { content: {}, redacts: '$x' };
    const redaction = room.build({ type: 'm.room.redaction', sender: 'bob', ...redactsField });
    expect(room.authorize(redaction)).toEqual({ allowed: true });
    const carolMessage = room.build({ type: 'm.room.message', sender: '@carol:other.example', content: {} });
    const bobMessage = room.build({ type: 'm.room.message', sender: 'bob', content: {} });
    // Bob (0 < redact 50) may redact events of his own server's users only.
    expect(redactionApplies(redaction, carolMessage, room.lookup, room.version)).toBe(false);
    expect(redactionApplies(redaction, bobMessage, room.lookup, room.version)).toBe(true);
    const byAlice = room.build({ type: 'm.room.redaction', sender: 'alice', ...redactsField });
    expect(redactionApplies(byAlice, carolMessage, room.lookup, room.version)).toBe(true);
  });

  it.each(inRules.no)('v%s: a power levels requirement on m.room.redaction still applies', (id) => {
    const room = createRoom(id, { powerLevels: { events: { 'm.room.redaction': 50 } } });
    room.membership('bob', 'join');
    expect(verdict(room.check({ type: 'm.room.redaction', sender: 'bob', content: { redacts: '$x' }, redacts: '$x' }))).toBe(`deny ${shift(id, 2)} sender/power`);
  });
});
