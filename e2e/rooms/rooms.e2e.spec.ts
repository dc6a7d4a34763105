/**
 * The rooms slice through matrix-js-sdk against a running server, in both
 * modes: createRoom (presets, alias, name/topic, invites, room versions),
 * joins by ID and alias, invite/leave/kick/ban/unban/forget/knock, sending
 * with transaction IDs, state, single events with history visibility,
 * redaction, members, aliases, the published room directory, deactivation
 * leaving rooms, and bad input. What one user does is checked through what
 * another user sees via the GET endpoints.
 */
import { MsgType } from 'matrix-js-sdk';
import { startTestServer, type Mode, type TestServer } from '../support/servers';
import { client, matrixError, registerUser, uniqueName } from '../support/clients';
import { newUser as registerTestUser, rawApi, REGISTER_BURST_ENV, startWithUsers, type TestUser } from '../support/fixtures';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-rooms-123';

type User = TestUser;

describe.each(modes)('rooms (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: User;
  let bob: User;
  let carol: User;

  const newUser = (prefix: string): Promise<User> => registerTestUser(base, prefix, PASSWORD);
  /** Raw HTTP for what the SDK does not expose (or exposes with client-side checks). */
  const api = (user: User | null, method: string, path: string, body?: unknown) => rawApi(base, user?.token, method, path, body);
  const enc = encodeURIComponent;

  beforeAll(async () => {
    ({ server, users: [alice, bob, carol] } = await startWithUsers(mode, { env: REGISTER_BURST_ENV }, PASSWORD, ['alice', 'bob', 'carol']));
    base = server.baseUrl;
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe('createRoom', () => {
    it('creates a public room with alias, name and topic, in the spec order, that another user joins by alias', async () => {
      const aliasName = uniqueName('pub');
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never, room_alias_name: aliasName, name: 'Pub', topic: 'Happy hour' });
      expect(roomId).toMatch(/^!/);
      const alias = `#${aliasName}:${server.serverName}`;

      const joined = await bob.sdk.joinRoom(alias);
      expect(joined.roomId).toBe(roomId);
      expect(await bob.sdk.getStateEvent(roomId, 'm.room.name', '')).toEqual({ name: 'Pub' });
      expect((await bob.sdk.getStateEvent(roomId, 'm.room.topic', '')).topic).toBe('Happy hour');
      expect(await bob.sdk.getStateEvent(roomId, 'm.room.join_rules', '')).toEqual({ join_rule: 'public' });
      expect(await bob.sdk.getStateEvent(roomId, 'm.room.canonical_alias', '')).toEqual({ alias });
      expect(await bob.sdk.getStateEvent(roomId, 'm.room.guest_access', '')).toEqual({ guest_access: 'forbidden' });
      expect((await bob.sdk.getJoinedRooms()).joined_rooms).toContain(roomId);
      expect((await bob.sdk.getRoomIdForAlias(alias)).room_id).toBe(roomId);

      const state = await bob.sdk.roomState(roomId);
      const create = state.find((e) => e.type === 'm.room.create')!;
      expect(create.content.room_version).toBe('12');
      expect(create.sender).toBe(alice.userId);
      const members = await bob.sdk.getJoinedRoomMembers(roomId);
      expect(Object.keys(members.joined).sort()).toEqual([alice.userId, bob.userId].sort());
    });

    it('applies initial_state, power_level_content_override and invites with is_direct', async () => {
      const { room_id: roomId } = await alice.sdk.createRoom({
        preset: 'private_chat' as never,
        invite: [bob.userId],
        is_direct: true,
        initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }, { type: 'org.example.custom', state_key: 'k', content: { a: 1 } }],
        power_level_content_override: { events_default: 10 },
        name: 'DM',
      });
      const invite = await api(alice, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(bob.userId)}`);
      expect(invite.json).toEqual({ membership: 'invite', is_direct: true });
      expect(await alice.sdk.getStateEvent(roomId, 'm.room.history_visibility', '')).toEqual({ history_visibility: 'joined' });
      expect(await alice.sdk.getStateEvent(roomId, 'org.example.custom', 'k')).toEqual({ a: 1 });
      expect((await alice.sdk.getStateEvent(roomId, 'm.room.power_levels', '')).events_default).toBe(10);
      expect(await alice.sdk.getStateEvent(roomId, 'm.room.join_rules', '')).toEqual({ join_rule: 'invite' });
      const members = await alice.sdk.members(roomId, 'invite');
      expect(members.chunk.map((e) => e.state_key)).toEqual([bob.userId]);
    });

    it.each(['1', '2', '3', '4', '5', '6', '7', '8', '9', '10', '11', '12'])('creates and uses a room of version %s', async (version) => {
      const { room_id: roomId } = await alice.sdk.createRoom({ room_version: version, preset: 'public_chat' as never });
      await bob.sdk.joinRoom(roomId);
      const { event_id: eventId } = await bob.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: `hello v${version}` });
      const event = await alice.sdk.fetchRoomEvent(roomId, eventId);
      expect(event).toMatchObject({ event_id: eventId, room_id: roomId, sender: bob.userId, type: 'm.room.message', content: { body: `hello v${version}` } });
      expect(event).not.toHaveProperty('hashes');
      expect(event).not.toHaveProperty('signatures');
      const create = (await alice.sdk.roomState(roomId)).find((e) => e.type === 'm.room.create')!;
      expect(create.content.room_version).toBe(version);
      // v1–v10 keep `creator` in the create content; v11+ drop it (the sender is the creator).
      if (Number(version) <= 10) expect(create.content.creator).toBe(alice.userId);
      else expect(create.content.creator).toBeUndefined();
    });

    it('refuses an unsupported room version with M_UNSUPPORTED_ROOM_VERSION', async () => {
      const error = await matrixError(alice.sdk.createRoom({ room_version: '999' }));
      expect(error.httpStatus).toBe(400);
      expect(error.errcode).toBe('M_UNSUPPORTED_ROOM_VERSION');
    });

    it('refuses a taken alias with M_ROOM_IN_USE and malformed bodies with M_BAD_JSON / M_NOT_JSON', async () => {
      const aliasName = uniqueName('taken');
      await alice.sdk.createRoom({ room_alias_name: aliasName });
      const taken = await matrixError(bob.sdk.createRoom({ room_alias_name: aliasName }));
      expect([taken.httpStatus, taken.errcode]).toEqual([400, 'M_ROOM_IN_USE']);

      expect(await api(alice, 'POST', '/createRoom', '{not json')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
      expect(await api(alice, 'POST', '/createRoom', '[]')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
      expect(await api(alice, 'POST', '/createRoom', { visibility: 'sideways' })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await api(alice, 'POST', '/createRoom', { preset: 'party' })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await api(alice, 'POST', '/createRoom', { name: 5 })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await api(alice, 'POST', '/createRoom', { initial_state: [{ type: 'x' }] })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await api(alice, 'POST', '/createRoom', { invite: ['not-a-user'] })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await api(null, 'POST', '/createRoom', {})).toMatchObject({ status: 401, json: { errcode: 'M_MISSING_TOKEN' } });
    });

    it('refuses initial state the creator may not send with M_INVALID_ROOM_STATE', async () => {
      const result = await api(alice, 'POST', '/createRoom', { power_level_content_override: { users: { [alice.userId]: 0 }, state_default: 50 }, room_version: '10', name: 'x' });
      expect(result).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_ROOM_STATE' } });
    });
  });

  describe('membership', () => {
    it('invites, joins, kicks, bans and unbans, each seen by the other users', async () => {
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'private_chat' as never });
      // Not invited to a private room: refused by the join rules.
      const refused = await matrixError(bob.sdk.joinRoom(roomId));
      expect([refused.httpStatus, refused.errcode]).toEqual([403, 'M_FORBIDDEN']);

      await alice.sdk.invite(roomId, bob.userId);
      expect((await alice.sdk.getStateEvent(roomId, 'm.room.member', bob.userId)).membership).toBe('invite');
      // An invitee is not a member yet: no state for them (rooms.yaml 403).
      expect((await matrixError(bob.sdk.getStateEvent(roomId, 'm.room.member', bob.userId))).errcode).toBe('M_FORBIDDEN');
      await bob.sdk.joinRoom(roomId);
      expect(Object.keys((await alice.sdk.getJoinedRoomMembers(roomId)).joined).sort()).toEqual([alice.userId, bob.userId].sort());

      await alice.sdk.kick(roomId, bob.userId, 'too loud');
      const kicked = await alice.sdk.getStateEvent(roomId, 'm.room.member', bob.userId);
      expect(kicked).toEqual({ membership: 'leave', reason: 'too loud' });
      expect((await bob.sdk.getJoinedRooms()).joined_rooms).not.toContain(roomId);

      await alice.sdk.invite(roomId, bob.userId);
      await bob.sdk.joinRoom(roomId);
      await alice.sdk.ban(roomId, bob.userId, 'spam');
      expect(await carol.sdk.joinRoom(roomId).catch((e: { errcode?: string }) => e.errcode)).toBe('M_FORBIDDEN');
      const banned = await alice.sdk.members(roomId, 'ban');
      expect(banned.chunk.map((e) => [e.state_key, e.content.reason])).toEqual([[bob.userId, 'spam']]);
      // A banned user cannot come back, even when invited.
      expect((await matrixError(alice.sdk.invite(roomId, bob.userId))).errcode).toBe('M_FORBIDDEN');

      await alice.sdk.unban(roomId, bob.userId);
      expect((await alice.sdk.getStateEvent(roomId, 'm.room.member', bob.userId)).membership).toBe('leave');
      // Unbanning someone who is not banned is refused.
      expect(await api(alice, 'POST', `/rooms/${enc(roomId)}/unban`, { user_id: bob.userId })).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    });

    it('puts the profile of local users in their membership events', async () => {
      const frank = await newUser('frank');
      await frank.sdk.setDisplayName('Frank F');
      const { room_id: roomId } = await frank.sdk.createRoom({ preset: 'public_chat' as never });
      expect(await frank.sdk.getStateEvent(roomId, 'm.room.member', frank.userId)).toEqual({ membership: 'join', displayname: 'Frank F' });
      await carol.sdk.joinRoom(roomId);
      const members = await frank.sdk.getJoinedRoomMembers(roomId);
      expect(members.joined[frank.userId]).toEqual({ display_name: 'Frank F' });
    });

    it('lets only users with enough power kick, ban and invite, and checks the body', async () => {
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never, power_level_content_override: { invite: 50 } });
      await bob.sdk.joinRoom(roomId);
      await carol.sdk.joinRoom(roomId);
      expect((await matrixError(bob.sdk.kick(roomId, carol.userId))).errcode).toBe('M_FORBIDDEN');
      expect((await matrixError(bob.sdk.ban(roomId, carol.userId))).errcode).toBe('M_FORBIDDEN');
      const dave = await newUser('dave');
      expect((await matrixError(bob.sdk.invite(roomId, dave.userId))).errcode).toBe('M_FORBIDDEN');
      expect(await api(alice, 'POST', `/rooms/${enc(roomId)}/kick`, {})).toMatchObject({ status: 400, json: { errcode: 'M_MISSING_PARAM' } });
      expect(await api(alice, 'POST', `/rooms/${enc(roomId)}/ban`, { user_id: 7 })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: 'nobody' })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: `@ghost_${Date.now()}:${server.serverName}` })).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, '{oops')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
    });

    it('leaves and forgets; a left user reads the state as it was when they left', async () => {
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never, name: 'Before' });
      await bob.sdk.joinRoom(roomId);
      expect((await matrixError(bob.sdk.forget(roomId))).errcode).toBe('M_UNKNOWN');
      await bob.sdk.leave(roomId);
      await alice.sdk.setRoomName(roomId, 'After');
      expect(await bob.sdk.getStateEvent(roomId, 'm.room.name', '')).toEqual({ name: 'Before' });
      expect(await alice.sdk.getStateEvent(roomId, 'm.room.name', '')).toEqual({ name: 'After' });
      await bob.sdk.forget(roomId);
      // Leaving again: not in the room any more.
      expect((await matrixError(bob.sdk.leave(roomId))).errcode).toBe('M_FORBIDDEN');
      // Carol never joined: no state for her (private history is not world_readable).
      expect((await matrixError(carol.sdk.roomState(roomId))).errcode).toBe('M_FORBIDDEN');
    });

    it('knocks on a knockable room (v7+) and is refused on older versions', async () => {
      const { room_id: roomId } = await alice.sdk.createRoom({ room_version: '10', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
      await carol.sdk.knockRoom(roomId, { reason: 'let me in' });
      expect(await alice.sdk.getStateEvent(roomId, 'm.room.member', carol.userId)).toEqual({ membership: 'knock', reason: 'let me in' });
      await alice.sdk.invite(roomId, carol.userId);
      await carol.sdk.joinRoom(roomId);
      expect((await alice.sdk.getStateEvent(roomId, 'm.room.member', carol.userId)).membership).toBe('join');

      const { room_id: old } = await alice.sdk.createRoom({ room_version: '6' });
      expect((await matrixError(carol.sdk.knockRoom(old))).errcode).toBe('M_FORBIDDEN');
    });

    it.each(['8', '10', '12'])('joins a restricted room (v%s) through membership of an allowed room', async (version) => {
      const { room_id: space } = await alice.sdk.createRoom({ preset: 'public_chat' as never });
      const { room_id: restricted } = await alice.sdk.createRoom({
        room_version: version,
        initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: space }] } }],
      });
      const dave = await newUser('dave');
      expect((await matrixError(dave.sdk.joinRoom(restricted))).errcode).toBe('M_FORBIDDEN');
      await dave.sdk.joinRoom(space);
      await dave.sdk.joinRoom(restricted);
      expect(await alice.sdk.getStateEvent(restricted, 'm.room.member', dave.userId)).toEqual({ membership: 'join', join_authorised_via_users_server: alice.userId });
    });

    it('answers joins of unknown rooms and aliases with 404 and bad IDs with 400', async () => {
      expect(await api(bob, 'POST', `/join/${enc(`!nope${Date.now()}:${server.serverName}`)}`, {})).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await api(bob, 'POST', `/join/${enc(`#nope${Date.now()}:${server.serverName}`)}`, {})).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await api(bob, 'POST', `/join/${enc('#remote:elsewhere.example')}`, {})).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await api(bob, 'POST', `/rooms/${enc('not-a-room')}/join`, {})).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
    });

    it('lets guests join only rooms with guest_access can_join, and removes them when that changes', async () => {
      const registered = await client(base).registerGuest();
      const guest: User = {
        userId: registered.user_id,
        token: registered.access_token!,
        deviceId: registered.device_id!,
        password: '',
        sdk: client(base, { userId: registered.user_id, accessToken: registered.access_token!, deviceId: registered.device_id }),
      };
      expect((await matrixError(guest.sdk.createRoom({}))).errcode).toBe('M_GUEST_ACCESS_FORBIDDEN');
      const { room_id: closed } = await alice.sdk.createRoom({ preset: 'public_chat' as never });
      expect(await api(guest, 'POST', `/rooms/${enc(closed)}/join`, {})).toMatchObject({ status: 403, json: { errcode: 'M_GUEST_ACCESS_FORBIDDEN' } });

      const { room_id: open } = await alice.sdk.createRoom({ preset: 'public_chat' as never, initial_state: [{ type: 'm.room.guest_access', state_key: '', content: { guest_access: 'can_join' } }] });
      expect(await api(guest, 'POST', `/rooms/${enc(open)}/join`, {})).toMatchObject({ status: 200, json: { room_id: open } });
      const sent = await api(guest, 'PUT', `/rooms/${enc(open)}/send/m.room.message/g1`, { msgtype: 'm.text', body: 'guest here' });
      expect(sent.status).toBe(200);
      expect((await alice.sdk.fetchRoomEvent(open, sent.json.event_id as string)).sender).toBe(guest.userId);
      expect((await api(guest, 'GET', `/rooms/${enc(open)}/state`)).status).toBe(200);

      await alice.sdk.sendStateEvent(open, 'm.room.guest_access' as never, { guest_access: 'forbidden' } as never, '');
      expect((await alice.sdk.getStateEvent(open, 'm.room.member', guest.userId)).membership).toBe('leave');
    });

    it('refuses invites to a user who blocks them (m.invite_permission_config) with M_INVITE_BLOCKED, and hides the invites they hold from /sync', async () => {
      const blocker = await newUser('blocker');
      const roomId = (await api(alice, 'POST', '/createRoom', { preset: 'private_chat' })).json.room_id as string;
      const earlier = (await api(alice, 'POST', '/createRoom', { preset: 'private_chat', invite: [blocker.userId] })).json.room_id as string;
      const invitesOf = async (user: User): Promise<string[]> => Object.keys((await api(user, 'GET', '/sync')).json.rooms?.invite ?? {});
      expect(await invitesOf(blocker)).toContain(earlier);
      const config = `/user/${enc(blocker.userId)}/account_data/m.invite_permission_config`;
      expect((await api(blocker, 'PUT', config, { default_action: 'block' })).status).toBe(200);

      const blocked = (res: { status: number; json: Record<string, unknown> }): void => expect([res.status, res.json.errcode]).toEqual([403, 'M_INVITE_BLOCKED']);
      blocked(await api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: blocker.userId }));
      blocked(await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.member/${enc(blocker.userId)}`, { membership: 'invite' }));
      // createRoom: refused before any room is made.
      const roomsBefore = (await api(alice, 'GET', '/joined_rooms')).json.joined_rooms as string[];
      blocked(await api(alice, 'POST', '/createRoom', { preset: 'private_chat', invite: [carol.userId, blocker.userId] }));
      expect(((await api(alice, 'GET', '/joined_rooms')).json.joined_rooms as string[]).length).toBe(roomsBefore.length);
      // The invite held from before is not served by /sync (nor the legacy initialSync), but stays in the room's state.
      expect(await invitesOf(blocker)).not.toContain(earlier);
      const legacy = (await api(blocker, 'GET', '/initialSync?limit=1')).json.rooms as Array<{ room_id: string }>;
      expect(legacy.map((r) => r.room_id)).not.toContain(earlier);
      expect((await api(alice, 'GET', `/rooms/${enc(earlier)}/state/m.room.member/${enc(blocker.userId)}`)).json).toMatchObject({ membership: 'invite' });
      // Other users are not affected.
      expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: carol.userId })).status).toBe(200);

      // "the same event without the default_action property" stops the blocking; an unknown value never blocked.
      expect((await api(blocker, 'PUT', config, { default_action: 'allow-some' })).status).toBe(200);
      expect(await invitesOf(blocker)).toContain(earlier);
      expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: blocker.userId })).status).toBe(200);
      expect((await api(blocker, 'PUT', config, {})).status).toBe(200);
      expect(await invitesOf(blocker)).toEqual(expect.arrayContaining([earlier, roomId]));
    });

    it('makes a deactivated user leave every room', async () => {
      const erin = await newUser('erin');
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never });
      await erin.sdk.joinRoom(roomId);
      const { room_id: invited } = await alice.sdk.createRoom({ invite: [erin.userId] });
      const first = await api(erin, 'POST', '/account/deactivate', {});
      const session = first.json.session as string;
      const done = await api(erin, 'POST', '/account/deactivate', { auth: { type: 'm.login.password', session, identifier: { type: 'm.id.user', user: erin.userId }, password: erin.password } });
      expect(done.status).toBe(200);
      expect((await alice.sdk.getStateEvent(roomId, 'm.room.member', erin.userId)).membership).toBe('leave');
      expect((await alice.sdk.getStateEvent(invited, 'm.room.member', erin.userId)).membership).toBe('leave');
    });
  });

  describe('sending and reading events', () => {
    let roomId: string;

    beforeAll(async () => {
      ({ room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never, name: 'Chat' }));
      await bob.sdk.joinRoom(roomId);
    });

    it('sends messages idempotently per device and transaction ID', async () => {
      const txn = `txn${Date.now()}`;
      const path = `/rooms/${enc(roomId)}/send/m.room.message/${txn}`;
      const first = await api(alice, 'PUT', path, { msgtype: MsgType.Text, body: 'once' });
      const again = await api(alice, 'PUT', path, { msgtype: MsgType.Text, body: 'once' });
      expect(first.status).toBe(200);
      expect(again.json.event_id).toBe(first.json.event_id);
      // Another user's identical transaction ID is another request.
      const other = await api(bob, 'PUT', path, { msgtype: MsgType.Text, body: 'once' });
      expect(other.json.event_id).not.toBe(first.json.event_id);

      const seen = await bob.sdk.fetchRoomEvent(roomId, first.json.event_id as string);
      expect(seen).toMatchObject({ sender: alice.userId, content: { body: 'once' }, room_id: roomId });
      expect(seen.unsigned?.age).toEqual(expect.any(Number));
      // unsigned.transaction_id only for the device that sent it.
      expect(seen.unsigned?.transaction_id).toBeUndefined();
      const own = await alice.sdk.fetchRoomEvent(roomId, first.json.event_id as string);
      expect(own.unsigned?.transaction_id).toBe(txn);
    });

    it('sets and reads state, with and without a state key, as content or as the event', async () => {
      await alice.sdk.sendStateEvent(roomId, 'org.example.state' as never, { v: 1 } as never, '');
      const second = await alice.sdk.sendStateEvent(roomId, 'org.example.state' as never, { v: 2 } as never, '');
      await alice.sdk.sendStateEvent(roomId, 'org.example.state' as never, { k: true } as never, 'key');
      expect(await bob.sdk.getStateEvent(roomId, 'org.example.state', '')).toEqual({ v: 2 });
      expect(await bob.sdk.getStateEvent(roomId, 'org.example.state', 'key')).toEqual({ k: true });
      const noSlash = await api(bob, 'GET', `/rooms/${enc(roomId)}/state/org.example.state`);
      expect(noSlash.json).toEqual({ v: 2 });
      const asEvent = await api(bob, 'GET', `/rooms/${enc(roomId)}/state/org.example.state/?format=event`);
      expect(asEvent.json).toMatchObject({ event_id: second.event_id, type: 'org.example.state', state_key: '', sender: alice.userId, content: { v: 2 }, unsigned: { prev_content: { v: 1 } } });
      const missing = await matrixError(bob.sdk.getStateEvent(roomId, 'org.example.none', ''));
      expect([missing.httpStatus, missing.errcode]).toEqual([404, 'M_NOT_FOUND']);
      expect(await api(bob, 'GET', `/rooms/${enc(roomId)}/state/org.example.state?format=xml`)).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
    });

    it('refuses state the sender lacks power for, and state keys of other users', async () => {
      const name = await matrixError(bob.sdk.setRoomName(roomId, 'Mine'));
      expect([name.httpStatus, name.errcode]).toEqual([403, 'M_FORBIDDEN']);
      expect(name.message).toMatch(/auth rule/);
      const foreign = await api(bob, 'PUT', `/rooms/${enc(roomId)}/state/org.example.user/${enc(alice.userId)}`, { x: 1 });
      expect(foreign).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      expect(await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.name/`, '"string"')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
    });

    it('redacts: only the sender or a moderator, and the stored event loses its content', async () => {
      const { event_id: eventId } = await bob.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'regret' });
      const { event_id: aliceEvent } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'mine' });
      // Bob (power 0 < redact 50) may not redact Alice's message.
      expect((await matrixError(bob.sdk.redactEvent(roomId, aliceEvent))).errcode).toBe('M_FORBIDDEN');

      const { event_id: redactionId } = await bob.sdk.redactEvent(roomId, eventId, undefined, { reason: 'typo' });
      const redacted = await alice.sdk.fetchRoomEvent(roomId, eventId);
      expect(redacted.content).toEqual({});
      expect(redacted.unsigned?.redacted_because).toMatchObject({ event_id: redactionId, type: 'm.room.redaction', sender: bob.userId, content: { reason: 'typo' } });
      const redaction = await alice.sdk.fetchRoomEvent(roomId, redactionId);
      expect(redaction).toMatchObject({ type: 'm.room.redaction', redacts: eventId });

      // Alice, a moderator by power level, may redact Bob's messages; idempotent per txnId.
      const { event_id: other } = await bob.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'spam' });
      const path = `/rooms/${enc(roomId)}/redact/${enc(other)}/rtxn${Date.now()}`;
      const r1 = await api(alice, 'PUT', path, {});
      const r2 = await api(alice, 'PUT', path, {});
      expect(r1.status).toBe(200);
      expect(r2.json.event_id).toBe(r1.json.event_id);
      expect((await bob.sdk.fetchRoomEvent(roomId, other)).content).toEqual({});
    });

    it('sends m.room.redaction through /send as well', async () => {
      const { event_id: eventId } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'via send' });
      const result = await api(alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.redaction/stx${Date.now()}`, { redacts: eventId });
      expect(result.status).toBe(200);
      expect((await bob.sdk.fetchRoomEvent(roomId, eventId)).content).toEqual({});
    });

    it('hides events from users who may not see them (404), following history visibility', async () => {
      const { room_id: privateRoom } = await alice.sdk.createRoom({ preset: 'private_chat' as never, initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
      const { event_id: early } = await alice.sdk.sendMessage(privateRoom, { msgtype: MsgType.Text, body: 'before carol' });
      const notMember = await matrixError(carol.sdk.fetchRoomEvent(privateRoom, early));
      expect([notMember.httpStatus, notMember.errcode]).toEqual([404, 'M_NOT_FOUND']);
      await alice.sdk.invite(privateRoom, carol.userId);
      await carol.sdk.joinRoom(privateRoom);
      // history_visibility "joined": still hidden after joining.
      expect((await matrixError(carol.sdk.fetchRoomEvent(privateRoom, early))).errcode).toBe('M_NOT_FOUND');
      const { event_id: later } = await alice.sdk.sendMessage(privateRoom, { msgtype: MsgType.Text, body: 'after carol' });
      expect((await carol.sdk.fetchRoomEvent(privateRoom, later)).content).toMatchObject({ body: 'after carol' });
      // Unknown event and event of another room: 404 as well.
      expect((await matrixError(carol.sdk.fetchRoomEvent(privateRoom, '$doesnotexist'))).httpStatus).toBe(404);
      expect((await matrixError(alice.sdk.fetchRoomEvent(roomId, later))).httpStatus).toBe(404);
    });

    it('lists members with membership filters and at a sync position', async () => {
      const all = await alice.sdk.members(roomId);
      expect(all.chunk.map((e) => e.state_key).sort()).toEqual([alice.userId, bob.userId].sort());
      const notJoined = await alice.sdk.members(roomId, undefined, 'join');
      expect(notJoined.chunk).toEqual([]);
      expect(await api(alice, 'GET', `/rooms/${enc(roomId)}/members?membership=dancing`)).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      // At the very start of the stream nobody had joined yet.
      expect((await api(alice, 'GET', `/rooms/${enc(roomId)}/members?at=s0_0_0`)).json.chunk).toEqual([]);
      expect(await api(carol, 'GET', `/rooms/${enc(roomId)}/joined_members`)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    });

    it('answers the r0 paths as the v3 ones', async () => {
      const r0 = async (method: string, path: string, body?: unknown) => {
        const response = await fetch(`${base}/_matrix/client/r0${path}`, { method, headers: { authorization: `Bearer ${alice.token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
        return { status: response.status, json: (await response.json()) as Record<string, unknown> };
      };
      const created = await r0('POST', '/createRoom', { name: 'r0 room' });
      expect(created.status).toBe(200);
      const id = enc(created.json.room_id as string);
      expect((await r0('PUT', `/rooms/${id}/send/m.room.message/r0txn`, { msgtype: 'm.text', body: 'old path' })).status).toBe(200);
      expect((await r0('GET', `/rooms/${id}/state/m.room.name/`)).json).toEqual({ name: 'r0 room' });
      expect((await r0('GET', '/joined_rooms')).json.joined_rooms).toContain(created.json.room_id);
    });

    it('refuses users who are not joined and unknown rooms', async () => {
      expect((await matrixError(carol.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'hi' }))).errcode).toBe('M_FORBIDDEN');
      const unknown = `!unknown${Date.now()}:${server.serverName}`;
      expect(await api(alice, 'PUT', `/rooms/${enc(unknown)}/send/m.room.message/t1`, { body: 'x' })).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      expect(await api(alice, 'GET', `/rooms/${enc(unknown)}/state`)).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      expect(await api(alice, 'GET', `/rooms/${enc(unknown)}/event/$x`)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await api(alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t2`, '{bad')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
      expect(await api(alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t3`, { n: 1.5 })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await api(alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t4`, { big: 'x'.repeat(70_000) })).toMatchObject({ status: 413, json: { errcode: 'M_TOO_LARGE' } });
    });
  });

  describe('timestamps and summaries (v1 endpoints)', () => {
    it('finds the event closest to a timestamp in either direction', async () => {
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'private_chat' as never });
      const before = Date.now();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const { event_id: eventId } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'stamp' });
      const forward = await alice.sdk.timestampToEvent(roomId, before, 'f' as never);
      expect(forward.event_id).toBe(eventId);
      const backward = await alice.sdk.timestampToEvent(roomId, Date.now() + 1000, 'b' as never);
      expect(backward.event_id).toBe(eventId);
      const v1 = (path: string, user: User | null) => fetch(`${base}/_matrix/client/v1${path}`, { headers: user ? { authorization: `Bearer ${user.token}` } : {} });
      const none = await v1(`/rooms/${enc(roomId)}/timestamp_to_event?ts=${Date.now() + 1000}&dir=f`, alice);
      expect([none.status, ((await none.json()) as { errcode: string }).errcode]).toEqual([404, 'M_NOT_FOUND']);
      expect((await v1(`/rooms/${enc(roomId)}/timestamp_to_event?ts=1&dir=up`, alice)).status).toBe(400);
      expect((await v1(`/rooms/${enc(roomId)}/timestamp_to_event?dir=f`, alice)).status).toBe(400);
      expect((await v1(`/rooms/${enc(roomId)}/timestamp_to_event?ts=1&dir=f`, carol)).status).toBe(403);
    });

    it('summarises public rooms for anyone and private rooms only for their members', async () => {
      const aliasName = uniqueName('sum');
      const { room_id: open } = await alice.sdk.createRoom({ preset: 'public_chat' as never, name: 'Summed', topic: 'Sums', room_alias_name: aliasName });
      const { room_id: closed } = await alice.sdk.createRoom({ preset: 'private_chat' as never, name: 'Secret' });
      const v1 = async (path: string, user: User | null) => {
        const response = await fetch(`${base}/_matrix/client/v1${path}`, { headers: user ? { authorization: `Bearer ${user.token}` } : {} });
        return { status: response.status, json: (await response.json()) as Record<string, unknown> };
      };
      const anonymous = await v1(`/room_summary/${enc(`#${aliasName}:${server.serverName}`)}`, null);
      expect(anonymous).toMatchObject({ status: 200, json: { room_id: open, name: 'Summed', topic: 'Sums', join_rule: 'public', num_joined_members: 1, world_readable: false, guest_can_join: false, room_version: '12' } });
      expect(anonymous.json.membership).toBeUndefined();
      expect((await v1(`/room_summary/${enc(open)}`, alice)).json.membership).toBe('join');
      expect(await v1(`/room_summary/${enc(closed)}`, bob)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await v1(`/room_summary/${enc(closed)}`, null)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      await alice.sdk.invite(closed, bob.userId);
      expect(await v1(`/room_summary/${enc(closed)}`, bob)).toMatchObject({ status: 200, json: { name: 'Secret', membership: 'invite' } });
    });
  });

  describe('room upgrades', () => {
    it('upgrades a room: the new room names its predecessor, the old one its replacement', async () => {
      const aliasName = uniqueName('upg');
      const { room_id: oldId } = await alice.sdk.createRoom({ room_version: '10', preset: 'public_chat' as never, name: 'Upgradable', room_alias_name: aliasName });
      await bob.sdk.joinRoom(oldId);
      expect((await matrixError(bob.sdk.upgradeRoom(oldId, '12'))).errcode).toBe('M_FORBIDDEN');
      expect(await api(alice, 'POST', `/rooms/${enc(oldId)}/upgrade`, { new_version: '99' })).toMatchObject({ status: 400, json: { errcode: 'M_UNSUPPORTED_ROOM_VERSION' } });
      expect(await api(alice, 'POST', `/rooms/${enc(oldId)}/upgrade`, {})).toMatchObject({ status: 400, json: { errcode: 'M_MISSING_PARAM' } });

      const { replacement_room: newId } = await alice.sdk.upgradeRoom(oldId, '12');
      expect((await bob.sdk.getStateEvent(oldId, 'm.room.tombstone', '')).replacement_room).toBe(newId);
      expect((await bob.sdk.getRoomIdForAlias(`#${aliasName}:${server.serverName}`)).room_id).toBe(newId);
      await bob.sdk.joinRoom(newId);
      expect(await bob.sdk.getStateEvent(newId, 'm.room.name', '')).toEqual({ name: 'Upgradable' });
      const create = (await bob.sdk.roomState(newId)).find((e) => e.type === 'm.room.create')!;
      expect(create.content).toMatchObject({ room_version: '12', predecessor: { room_id: oldId } });
      // The old room is closed to ordinary members.
      expect((await matrixError(bob.sdk.sendMessage(oldId, { msgtype: MsgType.Text, body: 'late' }))).errcode).toBe('M_FORBIDDEN');
    });
  });

  describe('aliases and the room directory', () => {
    it('creates, resolves, lists and deletes aliases', async () => {
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never });
      const alias = `#${uniqueName('al')}:${server.serverName}`;
      await alice.sdk.createAlias(alias, roomId);
      expect((await bob.sdk.getRoomIdForAlias(alias)).room_id).toBe(roomId);
      const again = await matrixError(bob.sdk.createAlias(alias, roomId));
      expect([again.httpStatus, again.errcode]).toEqual([409, 'M_UNKNOWN']);
      await bob.sdk.joinRoom(roomId);
      expect((await bob.sdk.getLocalAliases(roomId)).aliases).toEqual([alias]);
      expect((await matrixError(bob.sdk.deleteAlias(alias))).errcode).toBe('M_FORBIDDEN');
      await alice.sdk.deleteAlias(alias);
      const gone = await matrixError(bob.sdk.getRoomIdForAlias(alias));
      expect([gone.httpStatus, gone.errcode]).toEqual([404, 'M_NOT_FOUND']);
      expect(await api(alice, 'PUT', `/directory/room/${enc('#x:elsewhere.example')}`, { room_id: roomId })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await api(alice, 'PUT', `/directory/room/${enc('nohash')}`, { room_id: roomId })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await api(alice, 'PUT', `/directory/room/${enc(alias)}`, {})).toMatchObject({ status: 400, json: { errcode: 'M_MISSING_PARAM' } });
    });

    it('publishes rooms in the directory and lists them in publicRooms', async () => {
      const name = uniqueName('Listed');
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never, visibility: 'public' as never, name, topic: 't' });
      expect((await bob.sdk.getRoomDirectoryVisibility(roomId)).visibility).toBe('public');
      const listed = await bob.sdk.publicRooms({ filter: { generic_search_term: name } });
      expect(listed.chunk).toEqual([expect.objectContaining({ room_id: roomId, name, topic: 't', num_joined_members: 1, world_readable: false, guest_can_join: false, join_rule: 'public' })]);
      expect(listed.total_room_count_estimate).toBe(1);
      expect((await matrixError(bob.sdk.setRoomDirectoryVisibility(roomId, 'private' as never))).errcode).toBe('M_FORBIDDEN');
      await alice.sdk.setRoomDirectoryVisibility(roomId, 'private' as never);
      expect((await bob.sdk.publicRooms({ filter: { generic_search_term: name } })).chunk).toEqual([]);
      const anonymous = await fetch(`${base}/_matrix/client/v3/publicRooms?limit=1`);
      expect(anonymous.status).toBe(200);
      expect(await api(null, 'GET', `/directory/list/room/${enc(`!none${Date.now()}:${server.serverName}`)}`)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
    });
  });
});

/**
 * ARCHITECTURE.md rule 1 with two room-server processes: the bus spreads
 * requests over both (a NATS queue group), so inputs of one room reach both at
 * once, and the per-room lease in Redis keeps them from writing the room
 * together. A client sees that every write succeeds and every member and
 * message is there; the single line of history itself is checked where the
 * PDUs are visible, in apps/room-server/src/room-writer.spec.ts.
 */
describe('rooms with two room-server replicas (cluster mode)', () => {
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer('cluster', {
      replicas: { 'room-server': 2, 'client-api': 2 },
      env: { ATRIUM_RATE_LIMITS__REGISTER__BURST: '100', ATRIUM_RATE_LIMITS__REGISTER__PER_SECOND: '10' },
    });
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('accepts concurrent writes to one room from many users, and every member and message is there', async () => {
    const base = server.baseUrl;
    const users = await Promise.all(
      Array.from({ length: 6 }, async () => {
        const r = await registerUser(base, uniqueName('rep'), 'pw-rooms-123');
        return client(base, { userId: r.user_id, accessToken: r.access_token!, deviceId: r.device_id });
      }),
    );
    const { room_id: roomId } = await users[0].createRoom({ preset: 'public_chat' as never });
    await Promise.all(users.slice(1).map((u) => u.joinRoom(roomId)));
    const sent = await Promise.all(users.flatMap((u, i) => Array.from({ length: 5 }, (_, j) => u.sendMessage(roomId, { msgtype: MsgType.Text, body: `u${i} m${j}` }))));
    expect(new Set(sent.map((s) => s.event_id)).size).toBe(30);
    const joined = await users[0].getJoinedRoomMembers(roomId);
    expect(Object.keys(joined.joined)).toHaveLength(6);
    for (const s of sent.slice(0, 10)) expect((await users[3].fetchRoomEvent(roomId, s.event_id)).room_id).toBe(roomId);
  });
});
