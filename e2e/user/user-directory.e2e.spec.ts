/**
 * The user directory (POST /user_directory/search, users.yaml) and ignoring
 * users (modules/ignore_users.md), and a message counting as presence
 * activity, through matrix-js-sdk, with raw fetch for
 * /sync, /messages, /context and the error cases, in both modes.
 */
import { MsgType, Visibility, type MatrixClient } from 'matrix-js-sdk';
import { startTestServer, type Mode, type TestServer } from '../support/servers';
import { client, registerUser, uniqueName } from '../support/clients';

const modes: Mode[] = ['embedded', 'cluster'];

interface Session {
  userId: string;
  accessToken: string;
  deviceId: string;
  sdk: MatrixClient;
}

type Json = Record<string, unknown>;

describe.each(modes)('user directory and ignored users (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;

  async function newUser(prefix: string, displayName?: string): Promise<Session> {
    const response = await registerUser(base, uniqueName(prefix), 'pw-123456');
    const credentials = { userId: response.user_id, accessToken: response.access_token!, deviceId: response.device_id! };
    const session = { ...credentials, sdk: client(base, credentials) };
    if (displayName !== undefined) await session.sdk.setDisplayName(displayName);
    return session;
  }

  async function call(session: Session | null, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (session) headers.authorization = `Bearer ${session.accessToken}`;
    const response = await fetch(`${base}/_matrix/client${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    return { status: response.status, json: (await response.json()) as Json };
  }

  async function search(session: Session, term: string, limit?: number): Promise<string[]> {
    const result = await session.sdk.searchUserDirectory({ term, limit });
    return result.results.map((r) => r.user_id);
  }

  const enc = encodeURIComponent;

  beforeAll(async () => {
    // Cluster: two client-api replicas behind the round-robin router, so the directory index (one cursor in
    // storage, an indexer per replica) is written by one process and searched through the other.
    server = await startTestServer(mode, { env: { ATRIUM_RATE_LIMITS__ENABLED: 'false' }, replicas: { 'client-api': 2 } });
    base = server.baseUrl;
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe('user directory', () => {
    it('finds users sharing a private room by display name or user ID, case-insensitively, with profile fields', async () => {
      const tag = uniqueName('q');
      const alice = await newUser('alice');
      const bob = await newUser('bob', `Bobby ${tag} Tables`);
      await bob.sdk.setAvatarUrl('mxc://example.org/bobface');
      const { room_id: roomId } = await alice.sdk.createRoom({ preset: 'private_chat' as never, invite: [bob.userId] });
      // Not joined yet: an invite is not a shared room.
      expect(await search(alice, tag)).toEqual([]);
      await bob.sdk.joinRoom(roomId);

      const found = await alice.sdk.searchUserDirectory({ term: tag.toUpperCase() });
      expect(found).toEqual({ limited: false, results: [{ user_id: bob.userId, display_name: `Bobby ${tag} Tables`, avatar_url: 'mxc://example.org/bobface' }] });
      expect(await search(alice, `tables ${tag.slice(0, 4)}`)).toEqual([bob.userId]);
      // By user ID: the full ID and a prefix of its localpart.
      expect(await search(alice, bob.userId)).toEqual([bob.userId]);
      expect(await search(alice, bob.userId.slice(1, 8).toUpperCase())).toContain(bob.userId);
      // Each word must match: "Bobby" and a word Bob's name does not have.
      expect(await search(alice, `${tag} nomatchword`)).toEqual([]);

      // After leaving the only shared room, Bob is no longer visible to Alice.
      await bob.sdk.leave(roomId);
      expect(await search(alice, tag)).toEqual([]);
    });

    it('finds members of public-join, world_readable and published rooms, and not of other private rooms', async () => {
      const tag = uniqueName('p');
      const searcher = await newUser('searcher');
      const [pub, world, listed, hidden] = await Promise.all(['pub', 'world', 'listed', 'hidden'].map((w) => newUser(w, `${w} ${tag}`)));
      await pub.sdk.createRoom({ preset: 'public_chat' as never });
      await world.sdk.createRoom({
        preset: 'private_chat' as never,
        initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }],
      });
      // Published in the room directory, though only invited users may join.
      await listed.sdk.createRoom({ preset: 'private_chat' as never, visibility: Visibility.Public });
      await hidden.sdk.createRoom({ preset: 'private_chat' as never });

      expect((await search(searcher, tag)).sort()).toEqual([pub.userId, world.userId, listed.userId].sort());
    });

    it('follows display name changes and per-room display names', async () => {
      const tag = uniqueName('n');
      const alice = await newUser('alice');
      const carol = await newUser('carol', `Carol ${tag}old`);
      const { room_id: roomId } = await carol.sdk.createRoom({ preset: 'public_chat' as never });
      await alice.sdk.joinRoom(roomId);
      expect(await search(alice, `${tag}old`)).toEqual([carol.userId]);

      // A profile change is sent to the rooms as a new member event ("Events on Change of Profile Information").
      await carol.sdk.setDisplayName(`Carol ${tag}new`);
      expect(await search(alice, `${tag}old`)).toEqual([]);
      expect((await alice.sdk.searchUserDirectory({ term: `${tag}new` })).results).toEqual([{ user_id: carol.userId, display_name: `Carol ${tag}new` }]);

      // A room-specific display name (the member event's displayname) matches too.
      await carol.sdk.sendStateEvent(roomId, 'm.room.member' as never, { membership: 'join', displayname: `Nick ${tag}room` } as never, carol.userId);
      expect(await search(alice, `${tag}room`)).toEqual([carol.userId]);
    });

    it('forgets a deactivated user (deactivation leaves every room)', async () => {
      const tag = uniqueName('d');
      const searcher = await newUser('searcher');
      const gone = await newUser('gone', `Gone ${tag}`);
      await gone.sdk.createRoom({ preset: 'public_chat' as never });
      expect(await search(searcher, tag)).toEqual([gone.userId]);
      await gone.sdk.deactivateAccount({ type: 'm.login.password', identifier: { type: 'm.id.user', user: gone.userId }, password: 'pw-123456' } as never);
      expect(await search(searcher, tag)).toEqual([]);
    });

    it('answers at most `limit` users and says when the list was cut', async () => {
      const tag = uniqueName('l');
      const owner = await newUser('owner', `Limit ${tag}`);
      const { room_id: roomId } = await owner.sdk.createRoom({ preset: 'public_chat' as never });
      for (let i = 0; i < 3; i++) {
        const member = await newUser('member', `Limit ${tag}`);
        await member.sdk.joinRoom(roomId);
      }
      const cut = await owner.sdk.searchUserDirectory({ term: tag, limit: 2 });
      expect(cut.results).toHaveLength(2);
      expect(cut.limited).toBe(true);
      const all = await owner.sdk.searchUserDirectory({ term: tag });
      expect(all.results).toHaveLength(4);
      expect(all.limited).toBe(false);
    });

    it('refuses bad requests with the right errcode', async () => {
      const alice = await newUser('alice');
      const cases: Array<[unknown, number, string]> = [
        [{}, 400, 'M_MISSING_PARAM'],
        [{ search_term: 5 }, 400, 'M_BAD_JSON'],
        [{ search_term: 'x', limit: 'ten' }, 400, 'M_BAD_JSON'],
        [{ search_term: 'x', limit: 1.5 }, 400, 'M_BAD_JSON'],
        [{ search_term: 'x', limit: -1 }, 400, 'M_INVALID_PARAM'],
        ['[1]', 400, 'M_NOT_JSON'],
      ];
      for (const [body, status, errcode] of cases) {
        const response = await call(alice, 'POST', '/v3/user_directory/search', body);
        expect([body, response.status, response.json.errcode]).toEqual([body, status, errcode]);
      }
      expect((await call(null, 'POST', '/v3/user_directory/search', { search_term: 'x' })).status).toBe(401);
      expect(await call(alice, 'POST', '/v3/user_directory/search', { search_term: '   ' })).toEqual({ status: 200, json: { results: [], limited: false } });
    });
  });

  describe('presence activity', () => {
    it('a message sent is activity: last_active_ago restarts and unavailable turns online', async () => {
      const lena = await newUser('lena');
      const mo = await newUser('mo');
      const { room_id: room } = await lena.sdk.createRoom({ preset: 'public_chat' as never });
      await mo.sdk.joinRoom(room);
      await lena.sdk.setPresence({ presence: 'unavailable' });
      expect(await mo.sdk.getPresence(lena.userId)).toMatchObject({ presence: 'unavailable' });
      await lena.sdk.sendMessage(room, { msgtype: MsgType.Text, body: 'back' });
      // The bump is not awaited by the send: poll briefly.
      let seen: Json = {};
      for (let i = 0; i < 50 && seen['presence'] !== 'online'; i++) {
        seen = (await mo.sdk.getPresence(lena.userId)) as unknown as Json;
        if (seen['presence'] !== 'online') await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(seen).toMatchObject({ presence: 'online', currently_active: true });
      expect(seen['last_active_ago']).toBeLessThan(10_000);
    });
  });

  describe('ignoring users', () => {
    let alice: Session;
    let bob: Session;
    let roomId: string;

    async function sync(session: Session, since?: string): Promise<Json> {
      const query = since === undefined ? '?timeout=0' : `?timeout=0&since=${enc(since)}`;
      const response = await call(session, 'GET', `/v3/sync${query}`);
      expect(response.status).toBe(200);
      return response.json;
    }

    function timeline(response: Json, room: string): Array<{ type: string; sender: string; event_id: string; content: Json }> {
      const rooms = response.rooms as { join: Record<string, { timeline: { events: Array<{ type: string; sender: string; event_id: string; content: Json }> } }> };
      return rooms.join[room]?.timeline.events ?? [];
    }

    function bodies(events: Array<{ content: Json }>): unknown[] {
      return events.map((e) => e.content['body']).filter((b) => b !== undefined);
    }

    beforeAll(async () => {
      alice = await newUser('alice');
      bob = await newUser('bob');
      // Anyone may set the topic, so Bob can send a state event.
      ({ room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never, power_level_content_override: { events: { 'm.room.topic': 0 } } }));
      await bob.sdk.joinRoom(roomId);
    });

    it('stores the list through the SDK and refuses malformed content', async () => {
      await alice.sdk.setIgnoredUsers([bob.userId]);
      expect(await alice.sdk.getAccountDataFromServer('m.ignored_user_list' as never)).toEqual({ ignored_users: { [bob.userId]: {} } });
      const path = `/v3/user/${enc(alice.userId)}/account_data/m.ignored_user_list`;
      expect((await call(alice, 'PUT', path, { ignored_users: [bob.userId] })).json.errcode).toBe('M_BAD_JSON');
      expect((await call(alice, 'PUT', path, {})).json.errcode).toBe('M_BAD_JSON');
      expect((await call(alice, 'PUT', path, { ignored_users: { 'not-a-user': {} } })).json.errcode).toBe('M_INVALID_PARAM');
      expect(await alice.sdk.getAccountDataFromServer('m.ignored_user_list' as never)).toEqual({ ignored_users: { [bob.userId]: {} } });
      await alice.sdk.setIgnoredUsers([]);
    });

    it('leaves ignored users’ messages out of /sync, /messages and /context, keeps their state events, and applies changes from the next sync', async () => {
      const before = await sync(alice);
      await bob.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'bob 1' });
      const afterFirst = await sync(alice, before.next_batch as string);
      expect(bodies(timeline(afterFirst, roomId))).toEqual(['bob 1']);

      // Ignore Bob: the next sync carries the new list and no longer Bob's messages.
      await alice.sdk.setIgnoredUsers([bob.userId]);
      const { event_id: hidden } = await bob.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'bob 2 (ignored)' });
      await bob.sdk.setRoomTopic(roomId, 'Topic by Bob');
      const { event_id: aliceEvent } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'alice 1' });
      const ignoring = await sync(alice, afterFirst.next_batch as string);
      const accountData = (ignoring.account_data as { events: Array<{ type: string; content: Json }> }).events;
      expect(accountData).toContainEqual({ type: 'm.ignored_user_list', content: { ignored_users: { [bob.userId]: {} } } });
      const events = timeline(ignoring, roomId);
      expect(bodies(events)).toEqual(['alice 1']);
      // "Servers must still send state events sent by ignored users to clients."
      expect(events.filter((e) => e.sender === bob.userId).map((e) => e.type)).toEqual(['m.room.topic']);

      // An initial sync leaves out Bob's messages, old and new, and keeps the rest.
      const initial = timeline(await sync(alice), roomId);
      expect(initial.some((e) => e.sender === bob.userId && e.type === 'm.room.message')).toBe(false);
      expect(bodies(initial)).toContain('alice 1');

      // /messages backwards: Bob's messages are left out, his state events stay.
      const messages = await call(alice, 'GET', `/v3/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      const chunk = messages.json.chunk as Array<{ type: string; sender: string; content: Json }>;
      expect(bodies(chunk)).toEqual(['alice 1']);
      expect(chunk.some((e) => e.sender === bob.userId && e.type === 'm.room.topic')).toBe(true);

      // GET /event of an ignored message reads as not found; Bob's state event is still given.
      expect((await call(alice, 'GET', `/v3/rooms/${enc(roomId)}/event/${enc(hidden)}`)).json.errcode).toBe('M_NOT_FOUND');
      const topic = chunk.find((e) => e.sender === bob.userId && e.type === 'm.room.topic') as unknown as { event_id: string };
      expect((await call(alice, 'GET', `/v3/rooms/${enc(roomId)}/event/${enc(topic.event_id)}`)).status).toBe(200);

      // /context: an ignored message reads as not found; around another event Bob's messages are left out.
      expect((await call(alice, 'GET', `/v3/rooms/${enc(roomId)}/context/${enc(hidden)}`)).json.errcode).toBe('M_NOT_FOUND');
      const context = await call(alice, 'GET', `/v3/rooms/${enc(roomId)}/context/${enc(aliceEvent)}?limit=20`);
      expect(context.status).toBe(200);
      expect(bodies(context.json.events_before as Array<{ content: Json }>)).toEqual([]);

      // POST /search: Bob's messages are not results; his topic (a state event) is.
      const searched = await call(alice, 'POST', '/v3/search', { search_categories: { room_events: { search_term: 'bob', filter: { rooms: [roomId] } } } });
      const results = ((searched.json.search_categories as Json).room_events as { results: Array<{ result: { sender: string; type: string } }> }).results;
      expect(results.filter((r) => r.result.sender === bob.userId).map((r) => r.result.type)).toEqual(['m.room.topic']);

      // Bob still sees his own messages.
      expect(bodies(timeline(await sync(bob), roomId))).toEqual(expect.arrayContaining(['bob 1', 'bob 2 (ignored)', 'alice 1']));

      // Un-ignore: Bob's new messages come again, the ones sent while ignored are not resent.
      const sinceIgnoring = ignoring.next_batch as string;
      await alice.sdk.setIgnoredUsers([]);
      await bob.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'bob 3' });
      expect(bodies(timeline(await sync(alice, sinceIgnoring), roomId))).toEqual(['bob 3']);
      // A fresh sync (what the spec tells clients to do) gives the missed ones too.
      expect(bodies(timeline(await sync(alice), roomId))).toEqual(expect.arrayContaining(['bob 1', 'bob 2 (ignored)', 'alice 1', 'bob 3']));
    });

    it('leaves ignored users’ thread replies out of bundled aggregations in /sync, /messages and /context', async () => {
      const hana = await newUser('hana');
      const ivan = await newUser('ivan');
      const { room_id: room } = await hana.sdk.createRoom({ preset: 'public_chat' as never });
      await ivan.sdk.joinRoom(room);
      await hana.sdk.setIgnoredUsers([ivan.userId]);
      const { event_id: root } = await hana.sdk.sendMessage(room, { msgtype: MsgType.Text, body: 'root' });
      const reply = (sender: Session, body: string) =>
        sender.sdk.sendEvent(room, 'm.room.message' as never, { msgtype: 'm.text', body, 'm.relates_to': { rel_type: 'm.thread', event_id: root } } as never);
      await reply(ivan, 'ivan in thread');
      await reply(hana, 'hana in thread');
      const threadOf = (events: Array<{ event_id: string; unsigned?: Json }>): Json | undefined => {
        const relations = events.find((e) => e.event_id === root)?.unsigned?.['m.relations'] as Json | undefined;
        return relations?.['m.thread'] as Json | undefined;
      };
      const expected = { count: 1, current_user_participated: true, latest_event: expect.objectContaining({ sender: hana.userId }) };
      expect(threadOf(timeline(await sync(hana), room) as never)).toEqual(expected);
      const messages = await call(hana, 'GET', `/v3/rooms/${enc(room)}/messages?dir=b&limit=20`);
      expect(threadOf(messages.json.chunk as never)).toEqual(expected);
      const context = await call(hana, 'GET', `/v3/rooms/${enc(room)}/context/${enc(root)}?limit=0`);
      expect(threadOf([context.json.event] as never)).toEqual(expected);
      // Ivan's own view counts both.
      expect(threadOf(timeline(await sync(ivan), room) as never)).toMatchObject({ count: 2 });
    });

    it('gives thread roots sent by ignored users redacted in GET /threads', async () => {
      const jack = await newUser('jack');
      const kim = await newUser('kim');
      const { room_id: room } = await jack.sdk.createRoom({ preset: 'public_chat' as never });
      await kim.sdk.joinRoom(room);
      const { event_id: root } = await kim.sdk.sendMessage(room, { msgtype: MsgType.Text, body: 'root by kim' });
      await jack.sdk.sendEvent(room, 'm.room.message' as never, { msgtype: 'm.text', body: 'jack replies', 'm.relates_to': { rel_type: 'm.thread', event_id: root } } as never);
      const threads = async (): Promise<Array<{ event_id: string; sender: string; content: Json; unsigned?: Json }>> => {
        const response = await fetch(`${base}/_matrix/client/v1/rooms/${enc(room)}/threads`, { headers: { authorization: `Bearer ${jack.accessToken}` } });
        return ((await response.json()) as { chunk: Array<{ event_id: string; sender: string; content: Json; unsigned?: Json }> }).chunk;
      };
      expect((await threads()).map((e) => e.content['body'])).toEqual(['root by kim']);
      await jack.sdk.setIgnoredUsers([kim.userId]);
      const [redacted] = await threads();
      expect(redacted).toMatchObject({ event_id: root, sender: kim.userId, content: {} });
      expect((redacted.unsigned?.['m.relations'] as Json)['m.thread']).toMatchObject({ count: 1, current_user_participated: true });
    });

    it('does not show invites from ignored users', async () => {
      const dave = await newUser('dave');
      const erin = await newUser('erin');
      await dave.sdk.setIgnoredUsers([erin.userId]);
      const since = (await sync(dave)).next_batch as string;
      const { room_id: fromErin } = await erin.sdk.createRoom({ preset: 'private_chat' as never, invite: [dave.userId] });
      const { room_id: fromAlice } = await alice.sdk.createRoom({ preset: 'private_chat' as never, invite: [dave.userId] });
      for (const response of [await sync(dave, since), await sync(dave)]) {
        const invites = Object.keys((response.rooms as { invite: Record<string, unknown> }).invite);
        expect(invites).toContain(fromAlice);
        expect(invites).not.toContain(fromErin);
      }
    });

    it('keeps a waiting /sync asleep when only ignored users speak', async () => {
      const frank = await newUser('frank');
      const grace = await newUser('grace');
      const { room_id: room } = await frank.sdk.createRoom({ preset: 'public_chat' as never });
      await grace.sdk.joinRoom(room);
      await frank.sdk.setIgnoredUsers([grace.userId]);
      // Two syncs first: the first marks Frank online, which the second receives; then nothing is pending.
      const first = (await sync(frank)).next_batch as string;
      const since = (await sync(frank, first)).next_batch as string;
      const started = Date.now();
      const waiting = call(frank, 'GET', `/v3/sync?timeout=3000&set_presence=offline&since=${enc(since)}`);
      await new Promise((resolve) => setTimeout(resolve, 300));
      await grace.sdk.sendMessage(room, { msgtype: MsgType.Text, body: 'ignored' });
      const response = await waiting;
      expect(response.status).toBe(200);
      expect(timeline(response.json, room)).toEqual([]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(2500);
    });
  });
});
