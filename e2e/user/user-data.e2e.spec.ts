/**
 * User data through matrix-js-sdk (and raw fetch for the error cases) in both
 * modes: account data (global and per room), room tags, profiles,
 * capabilities, presence, send-to-device with delivery through /sync, and
 * the 3PID endpoints Atrium refuses.
 */
import type { Mode, TestServer } from '../support/servers';
import { client, matrixError } from '../support/clients';
import { newUser as registerTestUser, rawApi, startWithUsers, type TestUser } from '../support/fixtures';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-123456';

type Session = TestUser;

describe.each(modes)('user data (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: Session;
  let bob: Session;

  const newUser = (prefix: string): Promise<Session> => registerTestUser(base, prefix, PASSWORD);
  /** A raw request with an access token; answers status and JSON body. */
  const call = (session: Session | null, method: string, path: string, body?: unknown) => rawApi(base, session?.token, method, path, body, '/_matrix/client');
  const enc = encodeURIComponent;

  beforeAll(async () => {
    // Two client-api replicas behind the round-robin router in cluster mode: tag writes race across
    // processes, and a long-poll on one replica must be woken by a write on the other.
    ({ server, users: [alice, bob] } = await startWithUsers(mode, { env: { ATRIUM_RATE_LIMITS__ENABLED: 'false' }, replicas: { 'client-api': 2 } }, PASSWORD, ['alice', 'bob']));
    base = server.baseUrl;
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe('account data', () => {
    it('stores and returns global account data', async () => {
      await alice.sdk.setAccountData('org.example.config' as never, { theme: 'dark', 'm.key.with.dots': [1, [2]] } as never);
      expect(await alice.sdk.getAccountDataFromServer('org.example.config' as never)).toEqual({ theme: 'dark', 'm.key.with.dots': [1, [2]] });
      await alice.sdk.setAccountData('org.example.config' as never, { theme: 'light' } as never);
      expect(await alice.sdk.getAccountDataFromServer('org.example.config' as never)).toEqual({ theme: 'light' });
    });

    it('answers 404 M_NOT_FOUND for a type never set (the SDK reads it as null)', async () => {
      expect(await alice.sdk.getAccountDataFromServer('org.example.unset' as never)).toBeNull();
      const raw = await call(alice, 'GET', `/v3/user/${enc(alice.userId)}/account_data/org.example.unset`);
      expect(raw.status).toBe(404);
      expect(raw.json.errcode).toBe('M_NOT_FOUND');
    });

    it('stores room account data apart from global account data', async () => {
      const roomId = `!room${Date.now()}:${server.serverName}`;
      await alice.sdk.setRoomAccountData(roomId, 'org.example.room' as never, { pinned: true } as never);
      const room = await call(alice, 'GET', `/v3/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/org.example.room`);
      expect(room).toEqual({ status: 200, json: { pinned: true } });
      const global = await call(alice, 'GET', `/v3/user/${enc(alice.userId)}/account_data/org.example.room`);
      expect(global.status).toBe(404);
      // r0 paths reach the same data.
      const r0 = await call(alice, 'GET', `/r0/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/org.example.room`);
      expect(r0.json).toEqual({ pinned: true });
    });

    it("refuses another user's account data with 403 M_FORBIDDEN", async () => {
      const put = await call(bob, 'PUT', `/v3/user/${enc(alice.userId)}/account_data/org.example.config`, { x: 1 });
      expect(put.status).toBe(403);
      expect(put.json.errcode).toBe('M_FORBIDDEN');
      const get = await call(bob, 'GET', `/v3/user/${enc(alice.userId)}/account_data/org.example.config`);
      expect(get.status).toBe(403);
      const room = await call(bob, 'GET', `/v3/user/${enc(alice.userId)}/rooms/${enc('!a:b.c')}/account_data/x.y`);
      expect(room.status).toBe(403);
    });

    it('refuses m.fully_read and m.push_rules with 405 M_BAD_JSON, globally and per room', async () => {
      for (const type of ['m.fully_read', 'm.push_rules']) {
        const global = await call(alice, 'PUT', `/v3/user/${enc(alice.userId)}/account_data/${type}`, { event_id: '$x' });
        expect(global.status).toBe(405);
        expect(global.json.errcode).toBe('M_BAD_JSON');
        const room = await call(alice, 'PUT', `/v3/user/${enc(alice.userId)}/rooms/${enc('!r:example.org')}/account_data/${type}`, { event_id: '$x' });
        expect(room.status).toBe(405);
        expect(room.json.errcode).toBe('M_BAD_JSON');
      }
    });

    it('refuses bodies that are not JSON objects and invalid room IDs', async () => {
      const notJson = await call(alice, 'PUT', `/v3/user/${enc(alice.userId)}/account_data/org.example.x`, '{nope');
      expect(notJson.status).toBe(400);
      expect(notJson.json.errcode).toBe('M_NOT_JSON');
      const array = await call(alice, 'PUT', `/v3/user/${enc(alice.userId)}/account_data/org.example.x`, [1, 2]);
      expect(array.status).toBe(400);
      expect(['M_NOT_JSON', 'M_BAD_JSON']).toContain(array.json.errcode);
      const badRoom = await call(alice, 'PUT', `/v3/user/${enc(alice.userId)}/rooms/${enc('@notaroom:example.org')}/account_data/org.example.x`, {});
      expect(badRoom.status).toBe(400);
      expect(badRoom.json.errcode).toBe('M_INVALID_PARAM');
    });

    it('needs an access token', async () => {
      const raw = await call(null, 'GET', `/v3/user/${enc(alice.userId)}/account_data/org.example.config`);
      expect(raw.status).toBe(401);
      expect(raw.json.errcode).toBe('M_MISSING_TOKEN');
    });
  });

  describe('room tags', () => {
    const roomId = `!tagged:example.org`;

    it('adds, lists and removes tags, stored as the m.tag room account data', async () => {
      await alice.sdk.setRoomTag(roomId, 'm.favourite', { order: 0.25 });
      await alice.sdk.setRoomTag(roomId, 'u.work', {});
      expect(await alice.sdk.getRoomTags(roomId)).toEqual({ tags: { 'm.favourite': { order: 0.25 }, 'u.work': {} } });
      const mTag = await call(alice, 'GET', `/v3/user/${enc(alice.userId)}/rooms/${enc(roomId)}/account_data/m.tag`);
      expect(mTag.json).toEqual({ tags: { 'm.favourite': { order: 0.25 }, 'u.work': {} } });
      await alice.sdk.deleteRoomTag(roomId, 'm.favourite');
      expect(await alice.sdk.getRoomTags(roomId)).toEqual({ tags: { 'u.work': {} } });
      // Deleting a tag that is not there still succeeds.
      await alice.sdk.deleteRoomTag(roomId, 'm.favourite');
    });

    it('answers an empty tag list for an untagged room', async () => {
      expect(await bob.sdk.getRoomTags('!untagged:example.org')).toEqual({ tags: {} });
    });

    it('keeps every tag when several are added at once', async () => {
      const room = `!concurrent${Date.now()}:example.org`;
      const names = Array.from({ length: 8 }, (_, i) => `u.tag${i}`);
      // Tags are a compare-and-set on the m.tag document. In cluster mode the writes go to one
      // client-api process: the CI database, FerretDB 1.24, does not re-check an update's filter, so
      // libs/storage serialises conditional updates per process only (mongo-store.ts); across
      // processes that guarantee needs MongoDB itself.
      const sdk = mode === 'cluster' ? client(server.services['client-api'], { userId: alice.userId, accessToken: alice.token, deviceId: alice.deviceId }) : alice.sdk;
      await Promise.all(names.map((name, i) => sdk.setRoomTag(room, name, { order: i / 10 })));
      const { tags } = await alice.sdk.getRoomTags(room);
      expect(Object.keys(tags).sort()).toEqual(names);
    });

    it("refuses another user's tags, a bad order and an over-long tag", async () => {
      const other = await call(bob, 'PUT', `/v3/user/${enc(alice.userId)}/rooms/${enc(roomId)}/tags/u.x`, {});
      expect(other.status).toBe(403);
      expect(other.json.errcode).toBe('M_FORBIDDEN');
      const order = await call(alice, 'PUT', `/v3/user/${enc(alice.userId)}/rooms/${enc(roomId)}/tags/u.x`, { order: 'first' });
      expect(order.status).toBe(400);
      expect(order.json.errcode).toBe('M_BAD_JSON');
      const long = await call(alice, 'PUT', `/v3/user/${enc(alice.userId)}/rooms/${enc(roomId)}/tags/${'u.'.padEnd(300, 'x')}`, {});
      expect(long.status).toBe(400);
      expect(long.json.errcode).toBe('M_INVALID_PARAM');
    });
  });

  describe('profile', () => {
    it('sets and reads display name and avatar', async () => {
      await alice.sdk.setDisplayName('Alice Liddell');
      await alice.sdk.setAvatarUrl('mxc://example.org/abcDEF123');
      expect(await alice.sdk.getProfileInfo(alice.userId)).toEqual({ displayname: 'Alice Liddell', avatar_url: 'mxc://example.org/abcDEF123' });
      expect(await alice.sdk.getProfileInfo(alice.userId, 'displayname')).toEqual({ displayname: 'Alice Liddell' });
      // Profiles are public: no access token needed.
      const anonymous = await call(null, 'GET', `/v3/profile/${enc(alice.userId)}/avatar_url`);
      expect(anonymous).toEqual({ status: 200, json: { avatar_url: 'mxc://example.org/abcDEF123' } });
      const r0 = await call(null, 'GET', `/r0/profile/${enc(alice.userId)}`);
      expect(r0.json).toEqual({ displayname: 'Alice Liddell', avatar_url: 'mxc://example.org/abcDEF123' });
    });

    it('answers an empty profile for a user who set nothing, and 404 for an unset field', async () => {
      expect(await bob.sdk.getProfileInfo(bob.userId)).toEqual({});
      const field = await call(null, 'GET', `/v3/profile/${enc(bob.userId)}/displayname`);
      expect(field.status).toBe(404);
      expect(field.json.errcode).toBe('M_NOT_FOUND');
    });

    it('answers 404 M_NOT_FOUND for an unknown user', async () => {
      const error = await matrixError(alice.sdk.getProfileInfo(`@nobody-${Date.now()}:${server.serverName}`));
      expect(error.httpStatus).toBe(404);
      expect(error.errcode).toBe('M_NOT_FOUND');
      const remote = await call(null, 'GET', `/v3/profile/${enc('@someone:remote.example')}`);
      expect(remote.status).toBe(404);
    });

    it("refuses to change another user's profile (403)", async () => {
      const raw = await call(bob, 'PUT', `/v3/profile/${enc(alice.userId)}/displayname`, { displayname: 'Mallory' });
      expect(raw.status).toBe(403);
      expect(raw.json.errcode).toBe('M_FORBIDDEN');
      expect((await alice.sdk.getProfileInfo(alice.userId)).displayname).toBe('Alice Liddell');
    });

    it('enforces the value rules and length limits', async () => {
      const path = `/v3/profile/${enc(alice.userId)}`;
      const long = await call(alice, 'PUT', `${path}/displayname`, { displayname: 'x'.repeat(257) });
      expect(long.status).toBe(400);
      expect(long.json.errcode).toBe('M_INVALID_PARAM');
      const notString = await call(alice, 'PUT', `${path}/displayname`, { displayname: 42 });
      expect(notString.status).toBe(400);
      expect(notString.json.errcode).toBe('M_BAD_JSON');
      const missing = await call(alice, 'PUT', `${path}/displayname`, { other: 'x' });
      expect(missing.status).toBe(400);
      expect(missing.json.errcode).toBe('M_MISSING_PARAM');
      const notMxc = await call(alice, 'PUT', `${path}/avatar_url`, { avatar_url: 'https://example.org/a.png' });
      expect(notMxc.status).toBe(400);
      expect(notMxc.json.errcode).toBe('M_INVALID_PARAM');
      const badKey = await call(alice, 'PUT', `${path}/NotAKey`, { NotAKey: 1 });
      expect(badKey.status).toBe(400);
      expect(badKey.json.errcode).toBe('M_INVALID_PARAM');
      const keyTooLarge = `org.${'k'.repeat(260)}`;
      const bigKey = await call(alice, 'PUT', `${path}/${keyTooLarge}`, { [keyTooLarge]: 1 });
      expect(bigKey.status).toBe(400);
      expect(bigKey.json.errcode).toBe('M_KEY_TOO_LARGE');
      const huge = await call(alice, 'PUT', `${path}/org.example.blob`, { 'org.example.blob': 'x'.repeat(70 * 1024) });
      expect(huge.status).toBe(400);
      expect(huge.json.errcode).toBe('M_PROFILE_TOO_LARGE');
      const notJson = await call(alice, 'PUT', `${path}/displayname`, '{');
      expect(notJson.status).toBe(400);
      expect(notJson.json.errcode).toBe('M_NOT_JSON');
    });

    it('updates the member event in every joined room when the display name or avatar changes', async () => {
      const carol = await newUser('carol');
      const { room_id: first } = await carol.sdk.createRoom({});
      const { room_id: second } = await carol.sdk.createRoom({});
      await carol.sdk.setDisplayName('Carol C');
      await carol.sdk.setAvatarUrl('mxc://example.org/carolAvatar');
      for (const roomId of [first, second]) {
        const member = await carol.sdk.getStateEvent(roomId, 'm.room.member', carol.userId);
        expect(member).toMatchObject({ membership: 'join', displayname: 'Carol C', avatar_url: 'mxc://example.org/carolAvatar' });
      }
      // Clearing the avatar removes it from the member event.
      await carol.sdk.setAvatarUrl('');
      const member = await carol.sdk.getStateEvent(first, 'm.room.member', carol.userId);
      expect(member.displayname).toBe('Carol C');
      expect(member.avatar_url).toBeUndefined();
      // A change of another field sends no member event.
      const memberEventId = async (): Promise<unknown> => {
        const members = await call(carol, 'GET', `/v3/rooms/${enc(first)}/members`);
        return (members.json.chunk as Array<{ state_key: string; event_id: string }>).find((e) => e.state_key === carol.userId)?.event_id;
      };
      const before = await memberEventId();
      expect(before).toEqual(expect.any(String));
      expect((await call(carol, 'PUT', `/v3/profile/${enc(carol.userId)}/m.tz`, { 'm.tz': 'UTC' })).status).toBe(200);
      expect(await memberEventId()).toBe(before);
    });

    it('stores custom fields and m.tz, and deletes fields', async () => {
      const path = `/v3/profile/${enc(bob.userId)}`;
      expect((await call(bob, 'PUT', `${path}/m.tz`, { 'm.tz': 'Europe/London' })).status).toBe(200);
      expect((await call(bob, 'PUT', `${path}/org.example.pronouns`, { 'org.example.pronouns': ['they'] })).status).toBe(200);
      expect(await bob.sdk.getProfileInfo(bob.userId)).toEqual({ 'm.tz': 'Europe/London', 'org.example.pronouns': ['they'] });
      expect((await call(bob, 'DELETE', `${path}/m.tz`)).status).toBe(200);
      expect(await bob.sdk.getProfileInfo(bob.userId)).toEqual({ 'org.example.pronouns': ['they'] });
    });

    it("serves matrix-js-sdk's extended profiles (v1.16 /versions): set, read by another user, delete", async () => {
      expect(await bob.sdk.doesServerSupportExtendedProfiles()).toBe(true);
      await bob.sdk.setExtendedProfileProperty('m.tz', 'America/New_York');
      await bob.sdk.setExtendedProfileProperty('org.example.status', { text: 'away' });
      expect(await alice.sdk.getExtendedProfileProperty(bob.userId, 'm.tz')).toBe('America/New_York');
      expect(await alice.sdk.getExtendedProfile(bob.userId)).toMatchObject({ 'm.tz': 'America/New_York', 'org.example.status': { text: 'away' } });
      await bob.sdk.deleteExtendedProfileProperty('org.example.status');
      expect(await alice.sdk.getExtendedProfile(bob.userId)).not.toHaveProperty('org.example.status');
      await bob.sdk.deleteExtendedProfileProperty('m.tz');
    });
  });

  describe('capabilities', () => {
    it('lists room versions 1-12 with the configured default and the account capabilities', async () => {
      const capabilities = await alice.sdk.fetchCapabilities();
      const versions = capabilities['m.room_versions']!;
      expect(versions.default).toBe('12');
      expect(Object.keys(versions.available).sort((a, b) => Number(a) - Number(b))).toEqual(
        Array.from({ length: 12 }, (_, i) => String(i + 1)),
      );
      expect(new Set(Object.values(versions.available))).toEqual(new Set(['stable']));
      expect(capabilities['m.change_password']).toEqual({ enabled: true });
      expect(capabilities['m.set_displayname']).toEqual({ enabled: true });
      expect(capabilities['m.set_avatar_url']).toEqual({ enabled: true });
      expect(capabilities['m.3pid_changes']).toEqual({ enabled: false });
      expect(capabilities['m.get_login_token']).toEqual({ enabled: false });
    });

    it('needs an access token', async () => {
      expect((await call(null, 'GET', '/v3/capabilities')).status).toBe(401);
      expect((await call(alice, 'GET', '/r0/capabilities')).status).toBe(200);
    });
  });

  describe('presence', () => {
    it('sets and reads presence with a status message', async () => {
      await alice.sdk.setPresence({ presence: 'online', status_msg: 'Tea time' });
      const mine = await alice.sdk.getPresence(alice.userId);
      expect(mine).toMatchObject({ presence: 'online', status_msg: 'Tea time', currently_active: true });
      expect(mine.last_active_ago).toEqual(expect.any(Number));
      await alice.sdk.setPresence({ presence: 'unavailable' });
      expect(await bob.sdk.getPresence(alice.userId)).toMatchObject({ presence: 'unavailable', status_msg: 'Tea time' });
    });

    it('reports offline for a user who never set presence, 404 for an unknown user', async () => {
      expect(await alice.sdk.getPresence(bob.userId)).toMatchObject({ presence: 'offline' });
      const error = await matrixError(alice.sdk.getPresence(`@ghost-${Date.now()}:${server.serverName}`));
      expect(error.httpStatus).toBe(404);
    });

    it("refuses to set another user's presence (403) and bad states (400)", async () => {
      const other = await call(bob, 'PUT', `/v3/presence/${enc(alice.userId)}/status`, { presence: 'offline' });
      expect(other.status).toBe(403);
      expect(other.json.errcode).toBe('M_FORBIDDEN');
      const bad = await call(alice, 'PUT', `/v3/presence/${enc(alice.userId)}/status`, { presence: 'asleep' });
      expect(bad.status).toBe(400);
      expect(bad.json.errcode).toBe('M_INVALID_PARAM');
      const missing = await call(alice, 'PUT', `/v3/presence/${enc(alice.userId)}/status`, {});
      expect(missing.status).toBe(400);
      expect(missing.json.errcode).toBe('M_MISSING_PARAM');
    });
  });

  describe('send-to-device', () => {
    it('accepts messages, idempotently per transaction', async () => {
      const messages = new Map([[bob.userId, new Map([[bob.deviceId, { hello: 'bob' }]])]]);
      await alice.sdk.sendToDevice('org.example.ping', messages, 'txn-1');
      await alice.sdk.sendToDevice('org.example.ping', messages, 'txn-1');
    });

    it('refuses a body without messages and malformed messages', async () => {
      const missing = await call(alice, 'PUT', '/v3/sendToDevice/org.example.ping/txn-bad-1', {});
      expect(missing.status).toBe(400);
      expect(missing.json.errcode).toBe('M_MISSING_PARAM');
      const notObject = await call(alice, 'PUT', '/v3/sendToDevice/org.example.ping/txn-bad-2', { messages: { [bob.userId]: { DEV: 'text' } } });
      expect(notObject.status).toBe(400);
      expect(notObject.json.errcode).toBe('M_BAD_JSON');
      const badUser = await call(alice, 'PUT', '/v3/sendToDevice/org.example.ping/txn-bad-3', { messages: { 'not-a-user': {} } });
      expect(badUser.status).toBe(400);
      expect(badUser.json.errcode).toBe('M_INVALID_PARAM');
    });
  });

  describe('through /sync', () => {
    type SyncBody = {
      next_batch: string;
      account_data?: { events: Array<{ type: string; content: Record<string, unknown> }> };
      presence?: { events: Array<{ type: string; sender: string; content: Record<string, unknown> }> };
      to_device?: { events: Array<{ type: string; sender: string; content: Record<string, unknown> }> };
      rooms?: { join?: Record<string, { account_data?: { events: Array<{ type: string; content: Record<string, unknown> }> } }> };
    };

    async function sync(session: Session, since?: string, timeout = 0): Promise<SyncBody> {
      const query = new URLSearchParams({ timeout: String(timeout) });
      if (since) query.set('since', since);
      const raw = await call(session, 'GET', `/v3/sync?${query}`);
      expect(raw.status).toBe(200);
      return raw.json as unknown as SyncBody;
    }

    async function loginAgain(session: Session, password = 'pw-123456'): Promise<Session> {
      const localpart = session.userId.slice(1, session.userId.indexOf(':'));
      const response = await client(base).loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: localpart }, password });
      const credentials = { userId: response.user_id, accessToken: response.access_token, deviceId: response.device_id };
      return { userId: credentials.userId, token: credentials.accessToken, deviceId: credentials.deviceId, password, sdk: client(base, credentials) };
    }

    it('gives global and room account data in the initial sync, then only what changed', async () => {
      const dave = await newUser('dave');
      const { room_id: roomId } = await dave.sdk.createRoom({});
      await dave.sdk.setAccountData('org.example.one' as never, { n: 1 } as never);
      await dave.sdk.setRoomTag(roomId, 'm.favourite', { order: 0.5 });
      const initial = await sync(dave);
      expect(initial.account_data?.events).toEqual(expect.arrayContaining([{ type: 'org.example.one', content: { n: 1 } }]));
      expect(initial.rooms?.join?.[roomId]?.account_data?.events).toEqual([{ type: 'm.tag', content: { tags: { 'm.favourite': { order: 0.5 } } } }]);

      const quiet = await sync(dave, initial.next_batch);
      expect(quiet.account_data?.events ?? []).toEqual([]);

      await dave.sdk.setAccountData('org.example.two' as never, { n: 2 } as never);
      const next = await sync(dave, quiet.next_batch);
      expect(next.account_data?.events).toEqual([{ type: 'org.example.two', content: { n: 2 } }]);
      expect(next.rooms?.join?.[roomId]?.account_data).toBeUndefined();
    });

    it('applies the filter to account data and presence', async () => {
      const kim = await newUser('kim');
      await kim.sdk.setAccountData('org.example.keep' as never, { keep: true } as never);
      await kim.sdk.setAccountData('org.example.drop' as never, { keep: false } as never);
      const filter = JSON.stringify({ account_data: { types: ['org.example.keep'] }, presence: { not_types: ['*'] } });
      const raw = await call(kim, 'GET', `/v3/sync?timeout=0&filter=${enc(filter)}`);
      expect(raw.status).toBe(200);
      const body = raw.json as unknown as SyncBody;
      expect(body.account_data?.events).toEqual([{ type: 'org.example.keep', content: { keep: true } }]);
      expect(body.presence?.events ?? []).toEqual([]);
    });

    it('delivers a to-device message exactly once, and deletes it once a later token acknowledges it', async () => {
      const erin = await newUser('erin');
      const first = await sync(erin);
      await bob.sdk.sendToDevice('org.example.secret', new Map([[erin.userId, new Map([[erin.deviceId, { key: 'k1' }]])]]), `t-${Date.now()}`);
      const delivered = await sync(erin, first.next_batch);
      expect(delivered.to_device?.events).toEqual([{ type: 'org.example.secret', sender: bob.userId, content: { key: 'k1' } }]);
      // The same since token again: the client never confirmed, so the message comes again.
      const repeated = await sync(erin, first.next_batch);
      expect(repeated.to_device?.events).toEqual(delivered.to_device?.events);
      // The next token acknowledges it: not delivered again, and gone even for the old token.
      const after = await sync(erin, delivered.next_batch);
      expect(after.to_device?.events ?? []).toEqual([]);
      const old = await sync(erin, first.next_batch);
      expect(old.to_device?.events ?? []).toEqual([]);
    });

    it('gives at most 100 to-device messages per response and the rest in the next', async () => {
      const lena = await newUser('lena');
      const { next_batch: since } = await sync(lena);
      for (let i = 0; i < 105; i++) {
        await bob.sdk.sendToDevice('org.example.many', new Map([[lena.userId, new Map([[lena.deviceId, { i }]])]]), `many-${i}`);
      }
      const first = await sync(lena, since);
      expect(first.to_device?.events.map((e) => e.content.i)).toEqual(Array.from({ length: 100 }, (_, i) => i));
      const second = await sync(lena, first.next_batch);
      expect(second.to_device?.events.map((e) => e.content.i)).toEqual([100, 101, 102, 103, 104]);
      const third = await sync(lena, second.next_batch);
      expect(third.to_device?.events ?? []).toEqual([]);
    });

    it("sends to every device of a user with '*', once per transaction", async () => {
      const frank = await newUser('frank');
      const frankPhone = await loginAgain(frank);
      const tokens = [(await sync(frank)).next_batch, (await sync(frankPhone)).next_batch];
      const messages = new Map([[frank.userId, new Map([['*', { hello: 'all' }]])]]);
      await alice.sdk.sendToDevice('org.example.broadcast', messages, 'broadcast-1');
      await alice.sdk.sendToDevice('org.example.broadcast', messages, 'broadcast-1');
      for (const [i, session] of [frank, frankPhone].entries()) {
        const body = await sync(session, tokens[i]);
        expect(body.to_device?.events).toEqual([{ type: 'org.example.broadcast', sender: alice.userId, content: { hello: 'all' } }]);
      }
    });

    it('wakes a waiting /sync when a to-device message arrives', async () => {
      const gina = await newUser('gina');
      // The first sync marks gina online; the second receives that, so the third has nothing to wait out.
      const { next_batch: since } = await sync(gina, (await sync(gina)).next_batch);
      const started = Date.now();
      const waiting = sync(gina, since, 20_000);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await alice.sdk.sendToDevice('org.example.wake', new Map([[gina.userId, new Map([[gina.deviceId, { now: true }]])]]), `wake-${Date.now()}`);
      const body = await waiting;
      expect(Date.now() - started).toBeLessThan(10_000);
      expect(body.to_device?.events).toEqual([{ type: 'org.example.wake', sender: alice.userId, content: { now: true } }]);
    });

    it('marks a syncing user online unless set_presence says otherwise', async () => {
      const jack = await newUser('jack');
      expect((await call(jack, 'GET', '/v3/sync?timeout=0&set_presence=offline')).status).toBe(200);
      expect(await alice.sdk.getPresence(jack.userId)).toMatchObject({ presence: 'offline' });
      const first = await sync(jack);
      expect(await alice.sdk.getPresence(jack.userId)).toMatchObject({ presence: 'online', currently_active: true });
      // The user's own presence change shows in the next response.
      const next = await sync(jack, first.next_batch);
      expect(next.presence?.events.find((e) => e.sender === jack.userId)?.content.presence).toBe('online');
      expect((await call(jack, 'GET', '/v3/sync?timeout=0&set_presence=unavailable')).status).toBe(200);
      expect(await alice.sdk.getPresence(jack.userId)).toMatchObject({ presence: 'unavailable' });
    });

    it('gives presence of the user and of room members, with display names', async () => {
      const hank = await newUser('hank');
      const ivy = await newUser('ivy');
      const { room_id: roomId } = await hank.sdk.createRoom({ preset: 'public_chat' as never });
      await ivy.sdk.joinRoom(roomId);
      await ivy.sdk.setDisplayName('Ivy');
      await ivy.sdk.setPresence({ presence: 'online', status_msg: 'around' });
      const initial = await sync(hank);
      const ivyPresence = initial.presence?.events.find((e) => e.sender === ivy.userId);
      expect(ivyPresence).toMatchObject({ type: 'm.presence', content: { presence: 'online', status_msg: 'around', displayname: 'Ivy' } });
      await ivy.sdk.setPresence({ presence: 'unavailable' });
      const next = await sync(hank, initial.next_batch);
      const ivyChanges = next.presence?.events.filter((e) => e.sender === ivy.userId) ?? [];
      expect(ivyChanges.map((e) => e.content.presence)).toEqual(['unavailable']);
    });
  });

  describe('third-party identifiers (not supported)', () => {
    it('lists no 3PIDs', async () => {
      expect(await alice.sdk.getThreePids()).toEqual({ threepids: [] });
    });

    it('refuses requestToken for registration, password reset and adding 3PIDs', async () => {
      const email = { client_secret: 'secret', email: 'alice@example.org', send_attempt: 1 };
      const msisdn = { client_secret: 'secret', country: 'GB', phone_number: '07700900000', send_attempt: 1 };
      for (const prefix of ['/v3', '/r0']) {
        for (const [path, body] of [['register/email', email], ['register/msisdn', msisdn], ['account/password/email', email], ['account/password/msisdn', msisdn]] as const) {
          const raw = await call(null, 'POST', `${prefix}/${path}/requestToken`, body);
          expect([raw.status, raw.json.errcode]).toEqual([403, 'M_THREEPID_DENIED']);
        }
        for (const [path, body] of [['account/3pid/email', email], ['account/3pid/msisdn', msisdn]] as const) {
          const raw = await call(null, 'POST', `${prefix}/${path}/requestToken`, body);
          expect([raw.status, raw.json.errcode]).toEqual([400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED']);
        }
      }
      const malformed = await call(null, 'POST', '/v3/register/email/requestToken', { email: 'a@b.c' });
      expect([malformed.status, malformed.json.errcode]).toEqual([400, 'M_MISSING_PARAM']);
    });

    it('refuses adding, binding and deleting 3PIDs; unbinding reports no-support', async () => {
      const add = await call(alice, 'POST', '/v3/account/3pid/add', { client_secret: 's', sid: '1' });
      expect([add.status, add.json.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const legacy = await call(alice, 'POST', '/v3/account/3pid', { three_pid_creds: { client_secret: 's', id_server: 'id.example', id_access_token: 't', sid: '1' } });
      expect([legacy.status, legacy.json.errcode]).toEqual([403, 'M_THREEPID_AUTH_FAILED']);
      const bind = await call(alice, 'POST', '/v3/account/3pid/bind', { client_secret: 's', id_server: 'id.example', id_access_token: 't', sid: '1' });
      expect([bind.status, bind.json.errcode]).toEqual([400, 'M_SERVER_NOT_TRUSTED']);
      const remove = await call(alice, 'POST', '/v3/account/3pid/delete', { medium: 'email', address: 'alice@example.org' });
      expect([remove.status, remove.json.errcode]).toEqual([403, 'M_FORBIDDEN']);
      const unbind = await call(alice, 'POST', '/v3/account/3pid/unbind', { medium: 'email', address: 'alice@example.org' });
      expect(unbind).toEqual({ status: 200, json: { id_server_unbind_result: 'no-support' } });
      expect((await call(null, 'GET', '/v3/account/3pid')).status).toBe(401);
    });
  });
});
