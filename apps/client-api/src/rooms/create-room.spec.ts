import { MatrixError } from '@atrium/http';
import { planCreateRoom } from './create-room';

const sender = '@alice:hs.test';
const plan = (body: Record<string, unknown>) => planCreateRoom({ sender, serverName: 'hs.test', body });
const order = (body: Record<string, unknown>) => plan(body).events.map((e) => `${e.type}|${e.state_key}`);

describe('planCreateRoom (create_room.yaml)', () => {
  it('orders the events as the spec lists them', () => {
    expect(
      order({
        room_alias_name: 'pub',
        preset: 'public_chat',
        initial_state: [{ type: 'm.room.encryption', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
        name: 'N',
        topic: 'T',
        invite: ['@bob:hs.test'],
      }),
    ).toEqual([
      `m.room.member|${sender}`,
      'm.room.power_levels|',
      'm.room.canonical_alias|',
      'm.room.join_rules|',
      'm.room.history_visibility|',
      'm.room.guest_access|',
      'm.room.encryption|',
      'm.room.name|',
      'm.room.topic|',
      'm.room.member|@bob:hs.test',
    ]);
  });

  it('lets initial_state override the preset, and name/topic override initial_state', () => {
    const events = plan({
      preset: 'private_chat',
      initial_state: [
        { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
        { type: 'm.room.name', content: { name: 'from state' } },
      ],
      name: 'from body',
    }).events;
    expect(events.filter((e) => e.type === 'm.room.join_rules').map((e) => e.content)).toEqual([{ join_rule: 'public' }]);
    expect(events.filter((e) => e.type === 'm.room.name').map((e) => e.content)).toEqual([{ name: 'from body' }]);
  });

  it('chooses the preset from the visibility, and the default room version', () => {
    const result = plan({ visibility: 'public' });
    expect(result.visibility).toBe('public');
    expect(result.room_version).toBe('12');
    expect(result.events.find((e) => e.type === 'm.room.join_rules')!.content).toEqual({ join_rule: 'public' });
    expect(plan({}).events.find((e) => e.type === 'm.room.join_rules')!.content).toEqual({ join_rule: 'invite' });
    expect(planCreateRoom({ sender, serverName: 'hs.test', body: {}, defaultVersion: '10' }).room_version).toBe('10');
  });

  it('builds power levels per room version, with the override on top', () => {
    const v12 = plan({ preset: 'trusted_private_chat', invite: ['@bob:hs.test'] });
    const pl12 = v12.events.find((e) => e.type === 'm.room.power_levels')!.content;
    expect(pl12.users).toEqual({});
    expect((pl12.events as Record<string, number>)['m.room.tombstone']).toBe(150);
    expect(v12.creation_content.additional_creators).toEqual(['@bob:hs.test']);

    const v10 = plan({ room_version: '10', preset: 'trusted_private_chat', invite: ['@bob:hs.test'], power_level_content_override: { ban: 80 } });
    const pl10 = v10.events.find((e) => e.type === 'm.room.power_levels')!.content;
    expect(pl10.users).toEqual({ [sender]: 100, '@bob:hs.test': 100 });
    expect(pl10.ban).toBe(80);
    expect(v10.creation_content.additional_creators).toBeUndefined();
  });

  it('marks invites as direct with is_direct and drops the creator from the invite list', () => {
    const events = plan({ invite: ['@bob:hs.test', sender], is_direct: true }).events.filter((e) => e.type === 'm.room.member');
    expect(events.map((e) => [e.state_key, e.content])).toEqual([
      [sender, { membership: 'join' }],
      ['@bob:hs.test', { membership: 'invite', is_direct: true }],
    ]);
  });

  it.each([
    [{ room_version: '13' }, 'M_UNSUPPORTED_ROOM_VERSION'],
    [{ room_version: 12 }, 'M_BAD_JSON'],
    [{ visibility: 'hidden' }, 'M_BAD_JSON'],
    [{ preset: 'open' }, 'M_BAD_JSON'],
    [{ room_alias_name: 'a:b' }, 'M_INVALID_PARAM'],
    [{ room_alias_name: '' }, 'M_INVALID_PARAM'],
    [{ invite: '@bob:hs.test' }, 'M_BAD_JSON'],
    [{ invite: ['bob'] }, 'M_INVALID_PARAM'],
    [{ invite_3pid: [{ medium: 'email' }] }, 'M_UNRECOGNIZED'],
    [{ initial_state: {} }, 'M_BAD_JSON'],
    [{ initial_state: [{ type: 'x', content: [] }] }, 'M_BAD_JSON'],
    [{ initial_state: [{ type: 'm.room.create', content: {} }] }, 'M_INVALID_ROOM_STATE'],
    [{ creation_content: 'x' }, 'M_BAD_JSON'],
    [{ is_direct: 'yes' }, 'M_BAD_JSON'],
  ])('refuses %j with %s', (body, errcode) => {
    let error: unknown;
    try {
      plan(body);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(MatrixError);
    expect((error as MatrixError).errcode).toBe(errcode);
    expect((error as MatrixError).status).toBe(400);
  });
});
