/**
 * m.room.power_levels: how each room version reads values (strings v1–v9,
 * floats v1–v5, integers only v10+), the change rules (rule 10 of v1–v5, 9 of
 * v6–v11, 10 of v12), and user power levels with and without the event.
 */
import { ROOM_VERSIONS } from '../room-versions';
import { parsePowerLevelValue, userPowerLevel } from './power-levels';
import { ALL_VERSIONS, createRoom, user, verdict, versionsWhere, withCreator } from './testing';

/** The m.room.power_levels rule number on each version's page. */
const plRule = (id: string): string => (['1', '2', '3', '4', '5', '12'].includes(id) ? '10' : '9');
/** Sub-rule numbers are written as in v1–v9; v10 adds two in front and v12 one more after the `users` check. */
const plSub = (id: string, n: number): string => {
  const v = Number(id);
  const offset = v >= 10 ? (n >= 2 && v >= 12 ? 3 : 2) : 0;
  return `${plRule(id)}.${n + offset}`;
};

describe('power level values per room version', () => {
  it('strings that are integers count in v1–v9 and nowhere after', () => {
    for (const id of ALL_VERSIONS) {
      const v = ROOM_VERSIONS[id];
      const expected = Number(id) <= 9 ? 100 : undefined;
      expect([id, parsePowerLevelValue(' +0100 ', v)]).toEqual([id, expected]);
      expect([id, parsePowerLevelValue('-5', v)]).toEqual([id, Number(id) <= 9 ? -5 : undefined]);
      expect([id, parsePowerLevelValue('1.5', v)]).toEqual([id, undefined]);
      expect([id, parsePowerLevelValue('ten', v)]).toEqual([id, undefined]);
    }
  });

  it('floats are truncated in v1–v5 only; non-finite values are never levels', () => {
    for (const id of ALL_VERSIONS) {
      const v = ROOM_VERSIONS[id];
      expect([id, parsePowerLevelValue(50.57, v)]).toEqual([id, Number(id) <= 5 ? 50 : undefined]);
      expect([id, parsePowerLevelValue(5.114698e4, v)]).toEqual([id, Number(id) <= 5 ? 51146 : undefined]);
      expect([id, parsePowerLevelValue(Infinity, v)]).toEqual([id, undefined]);
      expect([id, parsePowerLevelValue(null, v)]).toEqual([id, undefined]);
    }
  });

  const stringy = versionsWhere((v) => !v.integerPowerLevels);
  it.each(stringy.yes)('v%s: a power levels event with string values is accepted and its levels apply', (id) => {
    const room = createRoom(id, { users: withCreator(id, { bob: '50' }), powerLevels: { ban: '50', events: { 'm.room.topic': '50' }, state_default: '75' } });
    room.membership('bob', 'join');
    room.membership('carol', 'join');
    expect(userPowerLevel(user('bob'), room.lookup, room.version)).toBe(50);
    expect(room.membership('bob', 'ban', 'carol')).toEqual({ allowed: true });
    expect(room.check({ type: 'm.room.topic', sender: 'bob', stateKey: '', content: { topic: 't' } })).toEqual({ allowed: true });
    expect(room.check({ type: 'm.room.name', sender: 'bob', stateKey: '', content: { name: 'n' } }).allowed).toBe(false);
  });

  it.each(stringy.no)('v%s: string values are rejected (rules 1–3 of v10+)', (id) => {
    const room = createRoom(id);
    const send = (content: Record<string, unknown>) => verdict(room.check(room.powerLevels('alice', { users: withCreator(id, {}), ...(content as object) })));
    expect(send({ ban: '50' })).toBe(`deny ${plRule(id)}.1 m.room.power_levels/not-integer`);
    expect(send({ events: { 'm.room.name': '50' } })).toBe(`deny ${plRule(id)}.2 m.room.power_levels/not-integer`);
    expect(send({ notifications: { room: '50' } })).toBe(`deny ${plRule(id)}.2 m.room.power_levels/not-integer`);
    expect(send({ events: [] })).toBe(`deny ${plRule(id)}.2 m.room.power_levels/not-integer`);
    expect(verdict(room.check(room.powerLevels('alice', { users: withCreator(id, { bob: '50' }) })))).toBe(`deny ${plRule(id)}.3 m.room.power_levels/users`);
  });

  it.each(ALL_VERSIONS)('v%s: a float in `users` is a truncated level in v1–v5 and rejected after', (id) => {
    const room = createRoom(id);
    room.membership('bob', 'join');
    const result = room.send(room.powerLevels('alice', { users: withCreator(id, { bob: 50.57 }) })).result;
    if (Number(id) <= 5) {
      expect(result).toEqual({ allowed: true });
      expect(userPowerLevel(user('bob'), room.lookup, room.version)).toBe(50);
    } else {
      expect(verdict(result)).toBe(`deny ${plSub(id, 1)} m.room.power_levels/users`);
    }
  });

  it.each(ALL_VERSIONS)('v%s: `users` must map user IDs to levels', (id) => {
    const room = createRoom(id);
    const r = `deny ${plSub(id, 1)} m.room.power_levels/users`;
    expect(verdict(room.check(room.powerLevels('alice', { users: { ...withCreator(id, {}), '#alias:example.org': 10 } })))).toBe(r);
    expect(verdict(room.check(room.powerLevels('alice', { users: withCreator(id, { bob: 'fifty' }) })))).toBe(r);
    expect(verdict(room.check(room.powerLevels('alice', { users: [] })))).toBe(r);
  });
});

describe('power levels change rules', () => {
  it.each(ALL_VERSIONS)('v%s: the first power levels event is allowed whatever it says', (id) => {
    const room = createRoom(id, { users: null });
    // Without a power levels event the creator has 100 (v1–v11) or infinite power (v12).
    expect(userPowerLevel(user('alice'), room.lookup, room.version)).toBe(id === '12' ? Infinity : 100);
    expect(userPowerLevel(user('bob'), room.lookup, room.version)).toBe(0);
    expect(room.check(room.powerLevels('alice', { users: withCreator(id, { bob: 1000 }), ban: 500 }))).toEqual({ allowed: true });
  });

  it.each(ALL_VERSIONS)('v%s: raising a user above one\'s own level is rejected; up to it allowed', (id) => {
    const room = createRoom(id, { users: withCreator(id, { mod: 50 }), powerLevels: { events: { 'm.room.power_levels': 50 } } });
    room.membership('mod', 'join');
    const base = { events: { 'm.room.power_levels': 50 } };
    const result = room.check(room.powerLevels('mod', { ...base, users: withCreator(id, { mod: 50, bob: 51 }) }));
    expect(verdict(result)).toBe(`deny ${plSub(id, 7)}.1 m.room.power_levels/users-raise-above-own`);
    expect(room.check(room.powerLevels('mod', { ...base, users: withCreator(id, { mod: 50, bob: 50 }) }))).toEqual({ allowed: true });
    // ...and raising oneself above one's level is caught the same way.
    expect(verdict(room.check(room.powerLevels('mod', { ...base, users: withCreator(id, { mod: 60 }) })))).toBe(`deny ${plSub(id, 7)}.1 m.room.power_levels/users-raise-above-own`);
  });

  it.each(ALL_VERSIONS)('v%s: demoting a peer is rejected; demoting oneself is allowed', (id) => {
    const room = createRoom(id, { users: withCreator(id, { mod: 50, mod2: 50 }), powerLevels: { events: { 'm.room.power_levels': 50 } } });
    room.membership('mod', 'join');
    const base = { events: { 'm.room.power_levels': 50 } };
    expect(verdict(room.check(room.powerLevels('mod', { ...base, users: withCreator(id, { mod: 50, mod2: 0 }) })))).toBe(`deny ${plSub(id, 6)}.1 m.room.power_levels/users-change-peer`);
    expect(verdict(room.check(room.powerLevels('mod', { ...base, users: withCreator(id, { mod: 50 }) })))).toBe(`deny ${plSub(id, 6)}.1 m.room.power_levels/users-change-peer`);
    expect(room.check(room.powerLevels('mod', { ...base, users: withCreator(id, { mod: 10, mod2: 50 }) }))).toEqual({ allowed: true });
  });

  it.each(ALL_VERSIONS)('v%s: top-level levels above the sender cannot be added, changed or removed', (id) => {
    const room = createRoom(id, { users: withCreator(id, { mod: 50 }), powerLevels: { events: { 'm.room.power_levels': 50 }, kick: 80 } });
    room.membership('mod', 'join');
    const base = { events: { 'm.room.power_levels': 50 }, users: withCreator(id, { mod: 50 }) };
    // kick is currently 80, above mod's 50: neither change nor removal.
    expect(verdict(room.check(room.powerLevels('mod', { ...base, kick: 40 })))).toBe(`deny ${plSub(id, 3)}.1 m.room.power_levels/change-above-own`);
    expect(verdict(room.check(room.powerLevels('mod', { ...base })))).toBe(`deny ${plSub(id, 3)}.1 m.room.power_levels/change-above-own`);
    // Adding a level above one's own.
    expect(verdict(room.check(room.powerLevels('mod', { ...base, kick: 80, ban: 60 })))).toBe(`deny ${plSub(id, 3)}.2 m.room.power_levels/raise-above-own`);
    // At or below one's own level is fine.
    expect(room.check(room.powerLevels('mod', { ...base, kick: 80, ban: 50, invite: 10 }))).toEqual({ allowed: true });
  });

  it.each(ALL_VERSIONS)('v%s: `events` entries above the sender cannot be touched or created', (id) => {
    const room = createRoom(id, { users: withCreator(id, { mod: 50 }), powerLevels: { events: { 'm.room.power_levels': 50, 'm.room.tombstone': 100 } } });
    room.membership('mod', 'join');
    const users = withCreator(id, { mod: 50 });
    expect(verdict(room.check(room.powerLevels('mod', { users, events: { 'm.room.power_levels': 50 } })))).toBe(`deny ${plSub(id, 4)}.1 m.room.power_levels/events-change-above-own`);
    expect(verdict(room.check(room.powerLevels('mod', { users, events: { 'm.room.power_levels': 50, 'm.room.tombstone': 100, 'm.room.name': 75 } })))).toBe(`deny ${plSub(id, 5)}.1 m.room.power_levels/events-raise-above-own`);
    expect(room.check(room.powerLevels('mod', { users, events: { 'm.room.power_levels': 50, 'm.room.tombstone': 100, 'm.room.name': 50 } }))).toEqual({ allowed: true });
  });

  const notifications = versionsWhere((v) => v.limitNotificationsPowerLevels);
  it.each(ALL_VERSIONS)('v%s: `notifications` is checked from v6 only', (id) => {
    const room = createRoom(id, { users: withCreator(id, { mod: 50 }), powerLevels: { events: { 'm.room.power_levels': 50 } } });
    room.membership('mod', 'join');
    const result = room.check(room.powerLevels('mod', { users: withCreator(id, { mod: 50 }), events: { 'm.room.power_levels': 50 }, notifications: { room: 80 } }));
    if (notifications.yes.includes(id)) expect(verdict(result)).toBe(`deny ${plSub(id, 5)}.1 m.room.power_levels/notifications-raise-above-own`);
    else expect(result).toEqual({ allowed: true });
  });

  it.each(['1', '9'] as const)('v%s: "50" → 50 is no change, so a user below 50 may send it', (id) => {
    const room = createRoom(id, { users: { alice: 100, bob: 10 }, powerLevels: { ban: '60', events: { 'm.room.power_levels': 10 } } });
    room.membership('bob', 'join');
    expect(room.check(room.powerLevels('bob', { users: withCreator(id, { bob: 10 }), ban: 60, events: { 'm.room.power_levels': 10 } }))).toEqual({ allowed: true });
  });
});

describe('room version 12 creators and power levels', () => {
  it('a power levels event listing a creator in `users` is rejected (rule 10.4)', () => {
    const room = createRoom('12', { additionalCreators: ['bob'] });
    expect(verdict(room.check(room.powerLevels('alice', { users: { [user('alice')]: 100 } })))).toBe('deny 10.4 m.room.power_levels/creator-in-users');
    expect(verdict(room.check(room.powerLevels('alice', { users: { [user('bob')]: 100 } })))).toBe('deny 10.4 m.room.power_levels/creator-in-users');
    // Even as the very first power levels event.
    const fresh = createRoom('12', { users: null });
    expect(verdict(fresh.check(fresh.powerLevels('alice', { users: { [user('alice')]: 100 } })))).toBe('deny 10.4 m.room.power_levels/creator-in-users');
  });

  it('creators have infinite power; listing them is fine before v12', () => {
    const room = createRoom('12', { additionalCreators: ['bob'], users: { mod: 100 } });
    expect(userPowerLevel(user('alice'), room.lookup, room.version)).toBe(Infinity);
    expect(userPowerLevel(user('bob'), room.lookup, room.version)).toBe(Infinity);
    expect(userPowerLevel(user('mod'), room.lookup, room.version)).toBe(100);
    // A creator may set any level, demote the top user, and raise levels without bound.
    expect(room.check(room.powerLevels('alice', { users: { [user('mod')]: 0 }, ban: 9007199254740991 }))).toEqual({ allowed: true });
    const v11 = createRoom('11', { users: { alice: 100 } });
    expect(userPowerLevel(user('alice'), v11.lookup, v11.version)).toBe(100);
  });

  it('additional creators count only in v12; v11 creator is the create sender, v10 the `creator` field', () => {
    const v10 = createRoom('10', { users: null });
    expect(userPowerLevel(user('alice'), v10.lookup, v10.version)).toBe(100);
    const v11 = createRoom('11', { users: null, additionalCreators: ['bob'] });
    expect(userPowerLevel(user('alice'), v11.lookup, v11.version)).toBe(100);
    expect(userPowerLevel(user('bob'), v11.lookup, v11.version)).toBe(0);
  });
});

describe('userPowerLevel', () => {
  it.each(ALL_VERSIONS)('v%s: users_default applies to unlisted users', (id) => {
    const room = createRoom(id, { users: withCreator(id, { bob: 30 }), powerLevels: { users_default: 5 } });
    expect(userPowerLevel(user('bob'), room.lookup, room.version)).toBe(30);
    expect(userPowerLevel(user('carol'), room.lookup, room.version)).toBe(5);
  });
});
