/**
 * Authorization rules for m.room.member (content/rooms/vN.md, rule 5 of
 * v1–v5, rule 4 of v6–v11, rule 5 of v12), in every room version.
 */
import { ALL_VERSIONS, createRoom, user, verdict, versionsWhere, withCreator } from './testing';

/** The m.room.member rule number of each version's page (after aliases/room ID rules move it). */
const memberRule = (id: string): string => (['1', '2', '3', '4', '5', '12'].includes(id) ? '5' : '4');
/** v8+ inserts sub-rule 2 (join_authorised_via_users_server). */
const sub = (id: string, n: number): string => `${memberRule(id)}.${Number(id) >= 8 ? n + 1 : n}`;

describe('m.room.member: malformed', () => {
  it.each(ALL_VERSIONS)('v%s: no membership in content is rejected (rule .1)', (id) => {
    const room = createRoom(id);
    const result = room.check({ type: 'm.room.member', sender: 'bob', stateKey: user('bob'), content: {} });
    expect(verdict(result)).toBe(`deny ${memberRule(id)}.1 m.room.member/malformed`);
  });

  it.each(ALL_VERSIONS)('v%s: no state_key is rejected (rule .1)', (id) => {
    const room = createRoom(id);
    const result = room.check({ type: 'm.room.member', sender: 'bob', content: { membership: 'join' } });
    expect(verdict(result)).toBe(`deny ${memberRule(id)}.1 m.room.member/malformed`);
  });

  it.each(ALL_VERSIONS)('v%s: an unknown membership is rejected', (id) => {
    const room = createRoom(id);
    room.membership('bob', 'join');
    const result = room.send(room.member('bob', 'dance')).result;
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.check).toBe('m.room.member/unknown');
  });
});

describe('m.room.member: join', () => {
  it.each(ALL_VERSIONS)('v%s: the creator joins right after the create event; nobody else may use that rule', (id) => {
    const room = createRoom(id, { users: null, joinRule: null });
    // Another user whose only prev event is the create event is not the creator.
    const create = room.lookup('m.room.create', '');
    const other = room.check({ ...room.member('bob', 'join'), prev: [create?.event_id ?? ''] });
    // With no join rules event the room is treated as invite-only.
    expect(verdict(other)).toBe(`deny ${sub(id, 2)}.4 m.room.member/join/not-invited`);
    expect(room.lookup('m.room.member', user('alice'))?.content['membership']).toBe('join');
  });

  it.each(ALL_VERSIONS)('v%s: joining on behalf of someone else is rejected', (id) => {
    const room = createRoom(id);
    expect(verdict(room.check(room.member('bob', 'join', 'carol')))).toBe(`deny ${sub(id, 2)}.2 m.room.member/join/other-user`);
  });

  it.each(ALL_VERSIONS)('v%s: public room: anyone may join; banned users may not', (id) => {
    const room = createRoom(id);
    expect(room.membership('bob', 'join')).toEqual({ allowed: true });
    expect(room.membership('alice', 'ban', 'carol')).toEqual({ allowed: true });
    expect(verdict(room.check(room.member('carol', 'join')))).toBe(`deny ${sub(id, 2)}.3 m.room.member/join/banned`);
  });

  it.each(ALL_VERSIONS)('v%s: invite-only room: a join without an invite is rejected, with one allowed', (id) => {
    const room = createRoom(id, { joinRule: 'invite' });
    expect(verdict(room.check(room.member('bob', 'join')))).toBe(`deny ${sub(id, 2)}.4 m.room.member/join/not-invited`);
    expect(room.membership('alice', 'invite', 'bob')).toEqual({ allowed: true });
    expect(room.membership('bob', 'join')).toEqual({ allowed: true });
  });

  it.each(ALL_VERSIONS)('v%s: an unknown join rule lets nobody in', (id) => {
    const room = createRoom(id, { joinRule: 'private' });
    const result = room.check(room.member('bob', 'join'));
    expect(result.allowed).toBe(false);
    if (!result.allowed) expect(result.check).toBe('m.room.member/join/join-rule');
  });

  const knock = versionsWhere((v) => v.knock);
  it.each(knock.yes)('v%s: join rule knock works like invite for joins', (id) => {
    const room = createRoom(id, { joinRule: 'knock' });
    expect(verdict(room.check(room.member('bob', 'join')))).toBe(`deny ${sub(id, 2)}.4 m.room.member/join/not-invited`);
    room.membership('alice', 'invite', 'bob');
    expect(room.membership('bob', 'join')).toEqual({ allowed: true });
  });
  it.each(knock.no)('v%s: join rule knock is unknown before v7 and lets nobody in, even invited', (id) => {
    const room = createRoom(id, { joinRule: 'knock' });
    room.membership('alice', 'invite', 'bob');
    expect(verdict(room.check(room.member('bob', 'join')))).toBe(`deny ${sub(id, 2)}.6 m.room.member/join/join-rule`);
  });
});

describe('m.room.member: restricted joins', () => {
  const restricted = versionsWhere((v) => v.restrictedJoin);
  const allow = [{ type: 'm.room_membership', room_id: '!other:example.org' }];

  it.each(restricted.yes)('v%s: a join vouched for by a joined user with invite power is allowed', (id) => {
    const room = createRoom(id, { joinRule: 'restricted', joinRulesContent: { allow }, powerLevels: { invite: 50 }, users: withCreator(id, { mod: 50 }) });
    room.membership('alice', 'invite', 'mod');
    room.membership('mod', 'join');
    const result = room.check(room.member('bob', 'join', 'bob', { join_authorised_via_users_server: user('mod') }));
    expect(result).toEqual({ allowed: true });
  });

  it.each(restricted.yes)('v%s: a vouching user without invite power is rejected (rule .5.2)', (id) => {
    const room = createRoom(id, { joinRule: 'restricted', joinRulesContent: { allow }, powerLevels: { invite: 50 }, users: withCreator(id, {}) });
    room.membership('alice', 'invite', 'carol');
    room.membership('carol', 'join');
    const result = room.check(room.member('bob', 'join', 'bob', { join_authorised_via_users_server: user('carol') }));
    expect(verdict(result)).toBe(`deny ${sub(id, 2)}.5.2 m.room.member/join/restricted/authoriser-power`);
  });

  it.each(restricted.yes)('v%s: a vouching user who is not joined is rejected; no voucher at all is rejected', (id) => {
    const room = createRoom(id, { joinRule: 'restricted', joinRulesContent: { allow }, powerLevels: { invite: 0 } });
    const viaStranger = room.check(room.member('bob', 'join', 'bob', { join_authorised_via_users_server: user('dave') }));
    expect(verdict(viaStranger)).toBe(`deny ${sub(id, 2)}.5.2 m.room.member/join/restricted/authoriser-not-joined`);
    expect(verdict(room.check(room.member('bob', 'join')))).toBe(`deny ${sub(id, 2)}.5.2 m.room.member/join/restricted/no-authoriser`);
  });

  it.each(restricted.yes)('v%s: invited users join a restricted room without a voucher', (id) => {
    const room = createRoom(id, { joinRule: 'restricted', joinRulesContent: { allow } });
    room.membership('alice', 'invite', 'bob');
    expect(room.membership('bob', 'join')).toEqual({ allowed: true });
  });

  it.each(restricted.yes)('v%s: the voucher\'s server must have signed the join (rule .2.1)', (id) => {
    const room = createRoom(id, { joinRule: 'restricted', joinRulesContent: { allow } });
    room.membership('alice', 'invite', '@carol:other.example');
    room.membership('@carol:other.example', 'join');
    const draft = room.member('bob', 'join', 'bob', { join_authorised_via_users_server: '@carol:other.example' });
    expect(verdict(room.check(draft))).toBe(`deny ${memberRule(id)}.2.1 m.room.member/join_authorised_via_users_server/signature`);
    const signed = { ...draft, signatures: { 'other.example': { 'ed25519:k': 'sig' } } };
    expect(room.check(signed)).toEqual({ allowed: true });
    // A caller that verified signatures decides.
    expect(room.check(signed, { verifySignature: () => false }).allowed).toBe(false);
    expect(room.check(draft, { verifySignature: (_e, server) => server === 'other.example' })).toEqual({ allowed: true });
  });

  it.each(restricted.no)('v%s: the restricted join rule does not exist: a vouched join is rejected', (id) => {
    const room = createRoom(id, { joinRule: 'restricted', joinRulesContent: { allow } });
    const result = room.check(room.member('bob', 'join', 'bob', { join_authorised_via_users_server: user('alice') }));
    expect(verdict(result)).toBe(`deny ${memberRule(id)}.2.6 m.room.member/join/join-rule`);
  });

  const knockRestricted = versionsWhere((v) => v.knockRestricted);
  it.each(knockRestricted.yes)('v%s: knock_restricted allows vouched joins', (id) => {
    const room = createRoom(id, { joinRule: 'knock_restricted', joinRulesContent: { allow } });
    const result = room.check(room.member('bob', 'join', 'bob', { join_authorised_via_users_server: user('alice') }));
    expect(result).toEqual({ allowed: true });
  });
  it.each(['8', '9'] as const)('v%s: knock_restricted is not a join rule yet', (id) => {
    const room = createRoom(id, { joinRule: 'knock_restricted', joinRulesContent: { allow } });
    const result = room.check(room.member('bob', 'join', 'bob', { join_authorised_via_users_server: user('alice') }));
    expect(verdict(result)).toBe('deny 4.3.7 m.room.member/join/join-rule');
  });
});

describe('m.room.member: knock', () => {
  const knock = versionsWhere((v) => v.knock);

  it.each(knock.yes)('v%s: knocking on a knock room is allowed; then the knocker may withdraw it', (id) => {
    const room = createRoom(id, { joinRule: 'knock' });
    expect(room.membership('bob', 'knock')).toEqual({ allowed: true });
    expect(room.membership('bob', 'leave')).toEqual({ allowed: true });
  });

  it.each(knock.yes)('v%s: knocking on a public or invite room is rejected', (id) => {
    for (const joinRule of ['public', 'invite']) {
      const room = createRoom(id, { joinRule });
      expect(verdict(room.check(room.member('bob', 'knock')))).toBe(`deny ${sub(id, 6)}.1 m.room.member/knock/join-rule`);
    }
  });

  it.each(knock.yes)('v%s: knocking for someone else, or while invited, joined or banned, is rejected', (id) => {
    const room = createRoom(id, { joinRule: 'knock' });
    expect(verdict(room.check(room.member('bob', 'knock', 'carol')))).toBe(`deny ${sub(id, 6)}.2 m.room.member/knock/other-user`);
    room.membership('alice', 'invite', 'bob');
    expect(verdict(room.check(room.member('bob', 'knock')))).toBe(`deny ${sub(id, 6)}.4 m.room.member/knock/membership`);
    room.membership('alice', 'ban', 'carol');
    expect(verdict(room.check(room.member('carol', 'knock')))).toBe(`deny ${sub(id, 6)}.4 m.room.member/knock/membership`);
    expect(verdict(room.check(room.member('alice', 'knock')))).toBe(`deny ${sub(id, 6)}.4 m.room.member/knock/membership`);
  });

  it.each(['7', '10', '12'] as const)('v%s: a knocker can be invited, or kicked by a moderator, but a non-member cannot leave', (id) => {
    const room = createRoom(id, { joinRule: 'knock' });
    room.membership('bob', 'knock');
    room.membership('carol', 'knock');
    expect(room.membership('alice', 'invite', 'bob')).toEqual({ allowed: true });
    expect(room.membership('alice', 'leave', 'carol')).toEqual({ allowed: true });
    expect(verdict(room.check(room.member('carol', 'leave')))).toBe(`deny ${sub(id, 4)}.1 m.room.member/leave/not-in-room`);
  });

  it.each(knock.no)('v%s: knock is an unknown membership before v7', (id) => {
    const room = createRoom(id, { joinRule: 'knock' });
    expect(verdict(room.check(room.member('bob', 'knock')))).toBe(`deny ${memberRule(id)}.6 m.room.member/unknown`);
  });

  it.each(knock.yes)('v%s: knock_restricted accepts knocks only from v10', (id) => {
    const room = createRoom(id, { joinRule: 'knock_restricted' });
    const result = room.check(room.member('bob', 'knock'));
    if (Number(id) >= 10) expect(result).toEqual({ allowed: true });
    else expect(verdict(result)).toBe(`deny ${sub(id, 6)}.1 m.room.member/knock/join-rule`);
  });
});

describe('m.room.member: invite', () => {
  it.each(ALL_VERSIONS)('v%s: an invite by a non-member is rejected', (id) => {
    const room = createRoom(id);
    expect(verdict(room.check(room.member('bob', 'invite', 'carol')))).toBe(`deny ${sub(id, 3)}.2 m.room.member/invite/sender-not-joined`);
  });

  it.each(ALL_VERSIONS)('v%s: inviting a joined or banned user is rejected', (id) => {
    const room = createRoom(id);
    room.membership('bob', 'join');
    expect(verdict(room.check(room.member('alice', 'invite', 'bob')))).toBe(`deny ${sub(id, 3)}.3 m.room.member/invite/target-membership`);
    room.membership('alice', 'ban', 'carol');
    expect(verdict(room.check(room.member('alice', 'invite', 'carol')))).toBe(`deny ${sub(id, 3)}.3 m.room.member/invite/target-membership`);
  });

  it.each(ALL_VERSIONS)('v%s: inviting needs the invite level', (id) => {
    const room = createRoom(id, { powerLevels: { invite: 50 } });
    room.membership('bob', 'join');
    expect(verdict(room.check(room.member('bob', 'invite', 'carol')))).toBe(`deny ${sub(id, 3)}.5 m.room.member/invite/power`);
    expect(room.membership('alice', 'invite', 'carol')).toEqual({ allowed: true });
  });

  it.each(ALL_VERSIONS)('v%s: the invitee may reject the invite (leave), a stranger may not leave', (id) => {
    const room = createRoom(id);
    room.membership('alice', 'invite', 'bob');
    expect(room.membership('bob', 'leave')).toEqual({ allowed: true });
    expect(verdict(room.check(room.member('carol', 'leave')))).toBe(`deny ${sub(id, 4)}.1 m.room.member/leave/not-in-room`);
  });
});

describe('m.room.member: kick and ban', () => {
  it.each(ALL_VERSIONS)('v%s: a kick of a higher-powered user is rejected; of a lower one allowed', (id) => {
    const room = createRoom(id, { users: withCreator(id, { bob: 50, carol: 60 }) });
    room.membership('bob', 'join');
    room.membership('carol', 'join');
    room.membership('dave', 'join');
    expect(verdict(room.check(room.member('bob', 'leave', 'carol')))).toBe(`deny ${sub(id, 4)}.5 m.room.member/leave/kick-power`);
    expect(room.membership('bob', 'leave', 'dave')).toEqual({ allowed: true });
  });

  it.each(ALL_VERSIONS)('v%s: an equal-powered user cannot be kicked or banned', (id) => {
    const room = createRoom(id, { users: withCreator(id, { bob: 50, carol: 50 }) });
    room.membership('bob', 'join');
    room.membership('carol', 'join');
    expect(verdict(room.check(room.member('bob', 'leave', 'carol')))).toBe(`deny ${sub(id, 4)}.5 m.room.member/leave/kick-power`);
    expect(verdict(room.check(room.member('bob', 'ban', 'carol')))).toBe(`deny ${sub(id, 5)}.3 m.room.member/ban/power`);
  });

  it.each(ALL_VERSIONS)('v%s: a kick needs the kick level and the kicker to be joined', (id) => {
    const room = createRoom(id);
    room.membership('bob', 'join');
    room.membership('carol', 'join');
    expect(verdict(room.check(room.member('bob', 'leave', 'carol')))).toBe(`deny ${sub(id, 4)}.5 m.room.member/leave/kick-power`);
    expect(verdict(room.check(room.member('dave', 'leave', 'carol')))).toBe(`deny ${sub(id, 4)}.2 m.room.member/leave/sender-not-joined`);
  });

  it.each(ALL_VERSIONS)('v%s: ban and unban', (id) => {
    const room = createRoom(id, { users: withCreator(id, { mod: 50 }), powerLevels: { ban: 50, kick: 75 } });
    room.membership('mod', 'join');
    room.membership('bob', 'join');
    // Banning needs the ban level and the target below the sender.
    expect(verdict(room.check(room.member('bob', 'ban', 'mod')))).toBe(`deny ${sub(id, 5)}.3 m.room.member/ban/power`);
    expect(room.membership('mod', 'ban', 'bob')).toEqual({ allowed: true });
    // The banned user cannot leave (lift the ban) themselves.
    expect(verdict(room.check(room.member('bob', 'leave')))).toBe(`deny ${sub(id, 4)}.1 m.room.member/leave/not-in-room`);
    // "To unban somebody, you must have power level greater than or equal to
    // both the kick and ban levels": mod has ban (50) but not kick (75).
    expect(verdict(room.check(room.member('mod', 'leave', 'bob')))).toBe(`deny ${sub(id, 4)}.5 m.room.member/leave/kick-power`);
    // A user below the ban level is stopped by rule .3 first.
    room.membership('carol', 'join');
    expect(verdict(room.check(room.member('carol', 'leave', 'bob')))).toBe(`deny ${sub(id, 4)}.3 m.room.member/leave/unban-power`);
    expect(room.membership('alice', 'leave', 'bob')).toEqual({ allowed: true });
    expect(room.membership('bob', 'join')).toEqual({ allowed: true });
  });

  it.each(ALL_VERSIONS)('v%s: a ban by a non-member is rejected', (id) => {
    const room = createRoom(id);
    room.membership('bob', 'join');
    expect(verdict(room.check(room.member('carol', 'ban', 'bob')))).toBe(`deny ${sub(id, 5)}.1 m.room.member/ban/sender-not-joined`);
  });
});

describe('m.room.member: room version 12 creators', () => {
  it('a creator cannot be kicked or banned, even by a user at the top of `users` or another creator', () => {
    const room = createRoom('12', { additionalCreators: ['bob'], users: { mod: 9007199254740991 } });
    room.membership('bob', 'join');
    room.membership('mod', 'join');
    expect(verdict(room.check(room.member('mod', 'leave', 'alice')))).toBe('deny 5.5.5 m.room.member/leave/kick-power');
    expect(verdict(room.check(room.member('mod', 'ban', 'bob')))).toBe('deny 5.6.3 m.room.member/ban/power');
    expect(verdict(room.check(room.member('bob', 'leave', 'alice')))).toBe('deny 5.5.5 m.room.member/leave/kick-power');
    expect(verdict(room.check(room.member('alice', 'ban', 'bob')))).toBe('deny 5.6.3 m.room.member/ban/power');
    // Creators can still kick anyone else.
    expect(room.membership('bob', 'leave', 'mod')).toEqual({ allowed: true });
  });

  it('in v11 the creator listed at 100 can be kicked by nobody below, but a peer at 100 may', () => {
    const room = createRoom('11', { users: { alice: 100, bob: 100 } });
    room.membership('bob', 'join');
    expect(verdict(room.check(room.member('bob', 'leave', 'alice')))).toBe('deny 4.5.5 m.room.member/leave/kick-power');
    const demote = createRoom('11', { users: { alice: 50, bob: 100 } });
    demote.membership('bob', 'join');
    expect(demote.membership('bob', 'ban', 'alice')).toEqual({ allowed: true });
  });
});
