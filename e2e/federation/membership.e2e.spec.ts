/**
 * The federation membership handshakes between two real Atrium servers over
 * TLS on 127.0.0.1 (docs/federation-design.md "membership handshakes";
 * server-server-api "Joining Rooms", "Inviting to a room", "Leaving Rooms
 * (Rejecting Invites)"). Server A hosts the rooms; users of server B join,
 * are invited, reject invites and leave, all through the Client-Server API.
 *
 * What crosses only in a transaction (/send) needs federation-outbound's
 * queues and the room-server input besides the handshakes: those checks are
 * in the last block.
 */
import { createTestCa, httpsJson, type TestCa } from '@atrium/test-servers';
import { eventually, newUser, rawApi, rawSync, REGISTER_BURST_ENV, type Json, type TestUser } from '../support/fixtures';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

const PASSWORD = 'pw-federation-123';
const WAIT_MS = 30_000;
const enc = encodeURIComponent;

/** Both modes by default, as the other suites; `ATRIUM_FEDERATION_MODES=embedded` for a quick run. */
const modes = (process.env.ATRIUM_FEDERATION_MODES ?? 'embedded,cluster').split(',').map((m) => m.trim()).filter((m): m is Mode => m === 'embedded' || m === 'cluster');

describe.each(modes)('federation membership between two Atrium servers (%s mode)', (mode) => {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    ca = createTestCa();
    const options = { federationTls: ca, env: REGISTER_BURST_ENV };
    [a, b] = await Promise.all([startTestServer(mode, options), startTestServer(mode, options)]);
  }, 300_000);

  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const api = (server: TestServer, user: TestUser, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> =>
    rawApi(server.baseUrl, user.token, method, path, body);

  async function publicRoom(owner: TestUser, extra: Json = {}): Promise<string> {
    const created = await api(a, owner, 'POST', '/createRoom', { preset: 'public_chat', name: 'Federated', ...extra });
    expect(created.status).toBe(200);
    return created.json.room_id as string;
  }

  /** The room's state as `user` reads it on `server` (type/state_key → content). */
  async function stateOf(server: TestServer, user: TestUser, roomId: string): Promise<Map<string, Json>> {
    const res = await api(server, user, 'GET', `/rooms/${enc(roomId)}/state`);
    expect(res.status).toBe(200);
    return new Map((res.json as unknown as Json[]).map((e) => [`${e.type}|${e.state_key}`, e.content as Json]));
  }

  it('a user of B joins a room of A by room ID: both servers store the join, B has the room state, /sync shows it', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const roomId = await publicRoom(alice);

    const joined = await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect(joined).toMatchObject({ status: 200, json: { room_id: roomId } });

    // B: the room with the state A gave in send_join, and bob's own join.
    const state = await stateOf(b, bob, roomId);
    expect(state.get('m.room.create|')).toBeDefined();
    expect(state.get('m.room.name|')).toEqual({ name: 'Federated' });
    expect(state.get(`m.room.member|${alice.userId}`)).toMatchObject({ membership: 'join' });
    expect(state.get(`m.room.member|${bob.userId}`)).toMatchObject({ membership: 'join' });
    expect((await api(b, bob, 'GET', '/joined_rooms')).json.joined_rooms).toContain(roomId);

    // A: send_join persisted bob's join in the room.
    const members = await api(a, alice, 'GET', `/rooms/${enc(roomId)}/joined_members`);
    expect(Object.keys(members.json.joined as Json).sort()).toEqual([alice.userId, bob.userId].sort());

    // B's /sync: the room under join, its state and bob's join in it.
    const sync = await rawSync(b.baseUrl, bob.token);
    const room = sync.rooms.join[roomId] as Json;
    expect(room).toBeDefined();
    const syncEvents = [...(room.state.events as Json[]), ...(room.timeline.events as Json[])];
    expect(syncEvents.some((e) => e.type === 'm.room.create')).toBe(true);
    expect(syncEvents.some((e) => e.type === 'm.room.member' && e.state_key === alice.userId)).toBe(true);
    expect(syncEvents.some((e) => e.type === 'm.room.member' && e.state_key === bob.userId && e.content.membership === 'join')).toBe(true);

    // A second join is a no-op on B (already joined, this server now in the room).
    expect((await api(b, bob, 'POST', `/rooms/${enc(roomId)}/join`, {})).status).toBe(200);
  });

  it.each(['1', '3', '11'])('a room of version %s (IDs naming their server) is joined without via, through the room ID\'s server', async (version) => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const kim = await newUser(b.baseUrl, 'kim', PASSWORD);
    const roomId = await publicRoom(alice, { room_version: version });
    expect(roomId.endsWith(`:${a.serverName}`)).toBe(true);
    expect(await api(b, kim, 'POST', `/rooms/${enc(roomId)}/join`, {})).toMatchObject({ status: 200, json: { room_id: roomId } });
    expect(Object.keys((await api(a, alice, 'GET', `/rooms/${enc(roomId)}/joined_members`)).json.joined as Json)).toContain(kim.userId);
    const state = await stateOf(b, kim, roomId);
    expect(state.get('m.room.create|')).toMatchObject({ room_version: version });
    expect(state.get(`m.room.member|${kim.userId}`)).toMatchObject({ membership: 'join' });
  });

  it('a user of B joins by alias of A (directory query), and without via through the alias servers', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const carol = await newUser(b.baseUrl, 'carol', PASSWORD);
    const localpart = `fed${Date.now().toString(36)}`;
    const roomId = await publicRoom(alice, { room_alias_name: localpart });
    const alias = `#${localpart}:${a.serverName}`;

    const joined = await api(b, carol, 'POST', `/join/${enc(alias)}`, {});
    expect(joined).toMatchObject({ status: 200, json: { room_id: roomId } });
    const members = await api(a, alice, 'GET', `/rooms/${enc(roomId)}/joined_members`);
    expect(Object.keys(members.json.joined as Json)).toContain(carol.userId);
  });

  it('an invite from A reaches B (signed by both, in /sync with invite_state) and is accepted', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const dave = await newUser(b.baseUrl, 'dave', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'private_chat', name: 'Invite only' });
    const roomId = created.json.room_id as string;

    expect((await api(a, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: dave.userId })).status).toBe(200);

    // A persisted the invite with B's signature added.
    const inviteState = await stateOf(a, alice, roomId);
    expect(inviteState.get(`m.room.member|${dave.userId}`)).toMatchObject({ membership: 'invite' });

    const sync = await eventually('the invite in B /sync', async () => {
      const s = await rawSync(b.baseUrl, dave.token);
      return s.rooms.invite[roomId] ? s : undefined;
    }, WAIT_MS);
    const stripped = sync.rooms.invite[roomId].invite_state.events as Json[];
    expect(stripped.some((e) => e.type === 'm.room.create')).toBe(true);
    expect(stripped.find((e) => e.type === 'm.room.name')?.content).toEqual({ name: 'Invite only' });
    expect(stripped.some((e) => e.type === 'm.room.member' && e.state_key === dave.userId && e.sender === alice.userId)).toBe(true);

    // Accepting: a join of a private room through the inviter's server.
    expect((await api(b, dave, 'POST', `/rooms/${enc(roomId)}/join`, {})).status).toBe(200);
    const members = await api(a, alice, 'GET', `/rooms/${enc(roomId)}/joined_members`);
    expect(Object.keys(members.json.joined as Json)).toContain(dave.userId);
    expect((await stateOf(b, dave, roomId)).get(`m.room.member|${dave.userId}`)).toMatchObject({ membership: 'join' });
  });

  it('an invite from A is rejected through make_leave/send_leave', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const erin = await newUser(b.baseUrl, 'erin', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'private_chat' });
    const roomId = created.json.room_id as string;
    expect((await api(a, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: erin.userId })).status).toBe(200);
    await eventually('the invite in B /sync', async () => ((await rawSync(b.baseUrl, erin.token)).rooms.invite[roomId] ? true : undefined), WAIT_MS);

    expect((await api(b, erin, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    // A: the rejection is in the room (send_leave persisted it).
    expect((await stateOf(a, alice, roomId)).get(`m.room.member|${erin.userId}`)).toMatchObject({ membership: 'leave' });
    // B: the invite is gone from erin's /sync, the room is under leave.
    const sync = await rawSync(b.baseUrl, erin.token, { filter: JSON.stringify({ room: { include_leave: true } }) });
    expect(sync.rooms.invite[roomId]).toBeUndefined();
    expect(sync.rooms.leave[roomId]).toBeDefined();
  });

  it('an invite withdrawn on A (kick of the invitee) leaves B\'s invitee with the room under leave', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const jude = await newUser(b.baseUrl, 'jude', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'private_chat' });
    const roomId = created.json.room_id as string;
    expect((await api(a, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: jude.userId })).status).toBe(200);
    await eventually('the invite in B /sync', async () => ((await rawSync(b.baseUrl, jude.token)).rooms.invite[roomId] ? true : undefined), WAIT_MS);

    expect((await api(a, alice, 'POST', `/rooms/${enc(roomId)}/kick`, { user_id: jude.userId, reason: 'changed my mind' })).status).toBe(200);
    const filter = JSON.stringify({ room: { include_leave: true } });
    const sync = await eventually('the withdrawal in B /sync', async () => {
      const s = await rawSync(b.baseUrl, jude.token, { filter });
      return s.rooms.leave[roomId] ? s : undefined;
    }, WAIT_MS);
    expect(sync.rooms.invite[roomId]).toBeUndefined();
  });

  it('a user of B knocks through A (knock_state in /sync), is invited and joins', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const gina = await newUser(b.baseUrl, 'gina', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', {
      preset: 'private_chat',
      name: 'Knock here',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }],
    });
    const roomId = created.json.room_id as string;

    expect(await api(b, gina, 'POST', `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, { reason: 'let me in' })).toMatchObject({ status: 200, json: { room_id: roomId } });
    expect((await stateOf(a, alice, roomId)).get(`m.room.member|${gina.userId}`)).toMatchObject({ membership: 'knock', reason: 'let me in' });
    const sync = await rawSync(b.baseUrl, gina.token);
    const knockState = sync.rooms.knock[roomId]?.knock_state.events as Json[];
    expect(knockState.find((e) => e.type === 'm.room.join_rules')?.content).toEqual({ join_rule: 'knock' });
    expect(knockState.find((e) => e.type === 'm.room.name')?.content).toEqual({ name: 'Knock here' });

    expect((await api(a, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: gina.userId })).status).toBe(200);
    expect((await api(b, gina, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);
    expect(Object.keys((await api(a, alice, 'GET', `/rooms/${enc(roomId)}/joined_members`)).json.joined as Json)).toContain(gina.userId);
  });

  it('a knock through A is withdrawn through A (a room version 12 ID names no server: the knock_state senders do)', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const nico = await newUser(b.baseUrl, 'nico', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'private_chat', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
    const roomId = created.json.room_id as string;
    expect((await api(b, nico, 'POST', `/knock/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);
    expect((await api(b, nico, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    expect((await stateOf(a, alice, roomId)).get(`m.room.member|${nico.userId}`)).toMatchObject({ membership: 'leave' });
  });

  it('a restricted room: A authorises the join of a member of the allowed room (join_authorised_via_users_server, signed by A); others get 403', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const hank = await newUser(b.baseUrl, 'hank', PASSWORD);
    const ivy = await newUser(b.baseUrl, 'ivy', PASSWORD);
    const allowedRoom = await publicRoom(alice);
    const created = await api(a, alice, 'POST', '/createRoom', {
      preset: 'private_chat',
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: allowedRoom }] } }],
    });
    const roomId = created.json.room_id as string;

    const refused = await api(b, ivy, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect(refused.status).toBe(403);

    expect((await api(b, hank, 'POST', `/join/${enc(allowedRoom)}?via=${enc(a.serverName)}`, {})).status).toBe(200);
    expect((await api(b, hank, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).json).toEqual({ room_id: roomId });
    expect((await stateOf(a, alice, roomId)).get(`m.room.member|${hank.userId}`)).toMatchObject({ membership: 'join', join_authorised_via_users_server: alice.userId });
    const onB = await api(b, hank, 'GET', `/rooms/${enc(roomId)}/state/m.room.member/${enc(hank.userId)}`);
    expect(onB.json).toMatchObject({ membership: 'join', join_authorised_via_users_server: alice.userId });
  });

  it('a restricted room B is already in but cannot authorise a join for (no local member with the invite level): the join goes through A', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const liam = await newUser(b.baseUrl, 'liam', PASSWORD);
    const mona = await newUser(b.baseUrl, 'mona', PASSWORD);
    const allowedRoom = await publicRoom(alice);
    const created = await api(a, alice, 'POST', '/createRoom', {
      preset: 'private_chat',
      power_level_content_override: { invite: 50 },
      initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: allowedRoom }] } }],
    });
    const roomId = created.json.room_id as string;
    // B becomes resident through liam (invited, so no authoriser needed), who may not invite.
    expect((await api(a, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: liam.userId })).status).toBe(200);
    expect((await api(b, liam, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);
    expect((await api(b, mona, 'POST', `/join/${enc(allowedRoom)}?via=${enc(a.serverName)}`, {})).status).toBe(200);

    expect((await api(b, mona, 'POST', `/rooms/${enc(roomId)}/join`, {})).json).toEqual({ room_id: roomId });
    expect((await stateOf(a, alice, roomId)).get(`m.room.member|${mona.userId}`)).toMatchObject({ membership: 'join', join_authorised_via_users_server: alice.userId });
    expect((await stateOf(b, mona, roomId)).get(`m.room.member|${mona.userId}`)).toMatchObject({ membership: 'join', join_authorised_via_users_server: alice.userId });
  });

  it('a remote invite of an unknown user of B is refused', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'private_chat' });
    const roomId = created.json.room_id as string;
    const res = await api(a, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: `@nobody-${Date.now()}:${b.serverName}` });
    expect(res.status).toBe(404);
    expect((await stateOf(a, alice, roomId)).size).toBeGreaterThan(0);
  });

  it('a user of B who blocks invites (m.invite_permission_config): B answers /invite with 403 M_INVITE_BLOCKED; createRoom on A still makes the room, without that invite', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const carol = await newUser(b.baseUrl, 'carol', PASSWORD);
    expect((await api(b, bob, 'PUT', `/user/${enc(bob.userId)}/account_data/m.invite_permission_config`, { default_action: 'block' })).status).toBe(200);
    const roomId = (await api(a, alice, 'POST', '/createRoom', { preset: 'private_chat' })).json.room_id as string;
    const res = await api(a, alice, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: bob.userId });
    expect([res.status, res.json.errcode]).toEqual([403, 'M_INVITE_BLOCKED']);
    expect((await stateOf(a, alice, roomId)).has(`m.room.member|${bob.userId}`)).toBe(false);

    // createRoom: the remote refusal comes after the room exists; the other invite goes through.
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'private_chat', invite: [bob.userId, carol.userId] });
    expect(created.status).toBe(200);
    const state = await stateOf(a, alice, created.json.room_id as string);
    expect(state.has(`m.room.member|${bob.userId}`)).toBe(false);
    expect(state.get(`m.room.member|${carol.userId}`)).toMatchObject({ membership: 'invite' });
    // Nothing reached bob's /sync.
    const bobSync = await rawSync(b.baseUrl, bob.token);
    expect(Object.keys(bobSync.rooms?.invite ?? {})).toEqual([]);
  });

  it('make_join without the X-Matrix signature is refused (401 M_UNAUTHORIZED)', async () => {
    const res = await httpsJson(`${a.federationUrl}/_matrix/federation/v1/make_join/${enc('!x:y')}/${enc('@u:y')}?ver=10`, { caPath: ca.certPath });
    expect(res.status).toBe(401);
    expect((res.json as Json).errcode).toBe('M_UNAUTHORIZED');
  });

  describe('after outbound queues (messages cross in /send)', () => {
    it('both users see each other\'s messages through /sync, a leave reaches A, and a rejoin works', async () => {
      const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
      const frank = await newUser(b.baseUrl, 'frank', PASSWORD);
      const roomId = await publicRoom(alice);
      expect((await api(b, frank, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);

      const fromA = await api(a, alice, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hello from A' });
      const fromB = await api(b, frank, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t1`, { msgtype: 'm.text', body: 'hello from B' });
      expect(fromA.status).toBe(200);
      expect(fromB.status).toBe(200);
      const bodies = async (server: TestServer, user: TestUser): Promise<string[]> => {
        const s = await rawSync(server.baseUrl, user.token);
        return ((s.rooms.join[roomId]?.timeline.events ?? []) as Json[]).filter((e) => e.type === 'm.room.message').map((e) => e.content.body as string);
      };
      await eventually('A message on B', async () => ((await bodies(b, frank)).includes('hello from A') ? true : undefined), WAIT_MS);
      await eventually('B message on A', async () => ((await bodies(a, alice)).includes('hello from B') ? true : undefined), WAIT_MS);

      expect((await api(b, frank, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
      await eventually(
        'the leave on A',
        async () => ((await stateOf(a, alice, roomId)).get(`m.room.member|${frank.userId}`)?.membership === 'leave' ? true : undefined),
        WAIT_MS,
      );

      // B is no longer in the room: the rejoin goes through A again, and B's next message reaches A.
      expect((await api(b, frank, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {})).status).toBe(200);
      expect((await stateOf(a, alice, roomId)).get(`m.room.member|${frank.userId}`)).toMatchObject({ membership: 'join' });
      expect((await api(b, frank, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/t2`, { msgtype: 'm.text', body: 'back again' })).status).toBe(200);
      await eventually('the message after the rejoin on A', async () => ((await bodies(a, alice)).includes('back again') ? true : undefined), WAIT_MS);
    });
  });
});
