import { checkMembershipTemplate, checkSentMembership, serversOfMembers, stripReceivedState } from './membership';

describe('federation membership checks', () => {
  const join = { type: 'm.room.member', sender: '@a:remote.example', state_key: '@a:remote.example', room_id: '!r:here', content: { membership: 'join' } };

  it('accepts a join of a user of the origin', () => {
    expect(checkSentMembership(join, { roomId: '!r:here', membership: 'join', origin: 'remote.example' })).toEqual({ ok: true });
  });

  it.each([
    ['another origin', join, 'other.example', 'M_FORBIDDEN'],
    ['a state_key that is not the sender', { ...join, state_key: '@b:remote.example' }, 'remote.example', 'M_BAD_JSON'],
    ['another membership', { ...join, content: { membership: 'leave' } }, 'remote.example', 'M_BAD_JSON'],
    ['another room', { ...join, room_id: '!other:here' }, 'remote.example', 'M_BAD_JSON'],
    ['another type', { ...join, type: 'm.room.message' }, 'remote.example', 'M_BAD_JSON'],
  ])('refuses %s', (_name, pdu, origin, errcode) => {
    const result = checkSentMembership(pdu, { roomId: '!r:here', membership: 'join', origin });
    expect(result.ok ? 'ok' : result.errcode).toBe(errcode);
  });

  it('checks templates', () => {
    const template = { ...join, depth: 3, prev_events: ['$p'], auth_events: ['$a'] };
    const expected = { roomId: '!r:here', userId: '@a:remote.example', membership: 'join' as const };
    expect(checkMembershipTemplate(template, expected).ok).toBe(true);
    expect(checkMembershipTemplate({ ...template, sender: '@b:remote.example' }, expected).ok).toBe(false);
    expect(checkMembershipTemplate({ ...template, depth: -1 }, expected).ok).toBe(false);
    expect(checkMembershipTemplate({ ...template, prev_events: undefined }, expected).ok).toBe(false);
    expect(checkMembershipTemplate('nope', expected).ok).toBe(false);
  });

  it('strips received state and drops malformed entries', () => {
    const pdu = { type: 'm.room.create', state_key: '', sender: '@c:x', content: { room_version: '10' }, hashes: { sha256: 'x' }, depth: 1 };
    expect(stripReceivedState([pdu, 'x', { type: 'm.room.name' }])).toEqual([{ type: 'm.room.create', state_key: '', sender: '@c:x', content: { room_version: '10' } }]);
  });

  it('lists the servers of members once each', () => {
    expect(serversOfMembers(['@a:b.example', '@c:a.example', '@d:b.example'])).toEqual(['a.example', 'b.example']);
  });
});
