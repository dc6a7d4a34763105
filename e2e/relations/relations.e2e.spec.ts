/**
 * Relations, threads, search and reporting through matrix-js-sdk against a
 * running server, in both modes (issue 4): edits bundled as m.replace on the
 * original in /event, /messages, /context and the other user's /sync;
 * threads listed by /threads with the bundled m.thread; reactions and
 * recursion through /relations; /search by rank and by recency with
 * context; event, room and user reports, and bad input with its errcode.
 * Raw fetch only where the SDK has no call (/sync without starting a client,
 * user reports, malformed bodies).
 */
import { Direction, MsgType } from 'matrix-js-sdk';
import type { Mode, TestServer } from '../support/servers';
import { matrixError } from '../support/clients';
import { newUser as registerTestUser, rawApi, REGISTER_BURST_ENV, startWithUsers, type TestUser } from '../support/fixtures';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-relations-123';

type User = TestUser;

type Json = Record<string, unknown>;

/** `unsigned["m.relations"]` of a served event. */
function relationsOf(event: unknown): Json | undefined {
  const unsigned = (event as { unsigned?: Json }).unsigned;
  return unsigned?.['m.relations'] as Json | undefined;
}

describe.each(modes)('relations, threads, search, reporting (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: User;
  let bob: User;
  let carol: User;
  let roomId: string;

  const newUser = (prefix: string): Promise<User> => registerTestUser(base, prefix, PASSWORD);
  /** Raw HTTP under /_matrix/client/{version}. */
  const api = (user: User, method: string, path: string, body?: unknown, version = 'v3') => rawApi(base, user.token, method, path, body, `/_matrix/client/${version}`);
  const enc = encodeURIComponent;

  beforeAll(async () => {
    ({ server, users: [alice, bob, carol] } = await startWithUsers(mode, { env: REGISTER_BURST_ENV }, PASSWORD, ['alice', 'bob', 'carol']));
    base = server.baseUrl;
    ({ room_id: roomId } = await alice.sdk.createRoom({ preset: 'public_chat' as never, name: 'Relations' }));
    await bob.sdk.joinRoom(roomId);
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe('edits (m.replace)', () => {
    it('bundles the latest edit by the original sender on the original in /event, /messages, /context and the other user\'s /sync', async () => {
      const { event_id: original } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'I like cake' });
      const edit = (body: string) => ({
        msgtype: MsgType.Text,
        body: `* ${body}`,
        'm.new_content': { msgtype: MsgType.Text, body },
        'm.relates_to': { rel_type: 'm.replace', event_id: original },
      });
      await alice.sdk.sendEvent(roomId, 'm.room.message' as never, edit('I like pie') as never);
      const { event_id: latest } = await alice.sdk.sendEvent(roomId, 'm.room.message' as never, edit('I like chocolate cake') as never);
      // An edit by someone else is not a valid replacement and is not bundled.
      await bob.sdk.sendEvent(roomId, 'm.room.message' as never, edit('bob was here') as never);

      const fetched = await bob.sdk.fetchRoomEvent(roomId, original);
      const replace = relationsOf(fetched)?.['m.replace'] as Json;
      expect(replace).toMatchObject({ event_id: latest, sender: alice.userId, type: 'm.room.message' });
      expect((replace['content'] as Json)['m.new_content']).toEqual({ msgtype: 'm.text', body: 'I like chocolate cake' });
      // "the content of the original event is left intact".
      expect(fetched.content).toEqual({ msgtype: 'm.text', body: 'I like cake' });

      const messages = await bob.sdk.createMessagesRequest(roomId, null, 20, Direction.Backward);
      const inMessages = messages.chunk.find((e) => e.event_id === original);
      expect((relationsOf(inMessages)?.['m.replace'] as Json)['event_id']).toBe(latest);

      const context = await api(bob, 'GET', `/rooms/${enc(roomId)}/context/${enc(original)}?limit=2`);
      expect(context.status).toBe(200);
      expect((relationsOf(context.json['event'])?.['m.replace'] as Json)['event_id']).toBe(latest);

      const sync = await api(bob, 'GET', `/sync?filter=${enc(JSON.stringify({ room: { timeline: { limit: 50 } } }))}`);
      expect(sync.status).toBe(200);
      const timeline = (((sync.json['rooms'] as Json)['join'] as Json)[roomId] as Json)['timeline'] as { events: Json[] };
      const inSync = timeline.events.find((e) => e['event_id'] === original);
      expect((relationsOf(inSync)?.['m.replace'] as Json)['event_id']).toBe(latest);

      // Redacting the latest edit falls back to the previous one.
      await alice.sdk.redactEvent(roomId, latest);
      const afterRedaction = await bob.sdk.fetchRoomEvent(roomId, original);
      expect(((relationsOf(afterRedaction)?.['m.replace'] as Json)['content'] as Json)['m.new_content']).toEqual({ msgtype: 'm.text', body: 'I like pie' });
    });
  });

  describe('threads (m.thread)', () => {
    let root: string;
    let replies: string[];

    beforeAll(async () => {
      ({ event_id: root } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'Thread root' }));
      replies = [];
      for (const body of ['first reply', 'second reply']) replies.push((await bob.sdk.sendMessage(roomId, root, { msgtype: MsgType.Text, body })).event_id);
    });

    it('lists the thread in /threads with the bundled m.thread (latest_event, count, participation)', async () => {
      // Raw fetch: without startClient the SDK has not read /versions and calls the unstable MSC3856 path.
      const listed = await api(alice, 'GET', `/rooms/${enc(roomId)}/threads?limit=10`, undefined, 'v1');
      const first = (listed.json['chunk'] as Json[])[0];
      expect(first['event_id']).toBe(root);
      const thread = relationsOf(first)?.['m.thread'] as Json;
      expect(thread).toMatchObject({ count: 2, current_user_participated: true });
      expect((thread['latest_event'] as Json)['event_id']).toBe(replies[1]);

      // carol joins but has not taken part: include=participated leaves the thread out.
      await carol.sdk.joinRoom(roomId);
      const carolAll = await api(carol, 'GET', `/rooms/${enc(roomId)}/threads`, undefined, 'v1');
      expect((carolAll.json['chunk'] as Json[]).map((e) => e['event_id'])).toContain(root);
      expect(((relationsOf((carolAll.json['chunk'] as Json[])[0])?.['m.thread'] as Json)['current_user_participated'])).toBe(false);
      const carolParticipated = await api(carol, 'GET', `/rooms/${enc(roomId)}/threads?include=participated`, undefined, 'v1');
      expect(carolParticipated.json['chunk']).toEqual([]);
      await carol.sdk.leave(roomId);
    });

    it('pages /threads with next_batch, most recently active thread first', async () => {
      const { event_id: second } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'Another root' });
      await alice.sdk.sendMessage(roomId, second, { msgtype: MsgType.Text, body: 'reply to another' });
      const page1 = await api(alice, 'GET', `/rooms/${enc(roomId)}/threads?limit=1`, undefined, 'v1');
      expect((page1.json['chunk'] as Json[]).map((e) => e['event_id'])).toEqual([second]);
      expect(typeof page1.json['next_batch']).toBe('string');
      const page2 = await api(alice, 'GET', `/rooms/${enc(roomId)}/threads?limit=1&from=${enc(page1.json['next_batch'] as string)}`, undefined, 'v1');
      expect((page2.json['chunk'] as Json[]).map((e) => e['event_id'])).toEqual([root]);
      const bad = await api(alice, 'GET', `/rooms/${enc(roomId)}/threads?include=some`, undefined, 'v1');
      expect(bad).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
    });

    it('gives the thread through /relations/{root}/m.thread, paginated', async () => {
      const page1 = await bob.sdk.fetchRelations(roomId, root, 'm.thread', null, { limit: 1 });
      expect(page1.chunk.map((e) => e.event_id)).toEqual([replies[1]]);
      expect(page1.next_batch).toBeTruthy();
      const page2 = await bob.sdk.fetchRelations(roomId, root, 'm.thread', null, { limit: 1, from: page1.next_batch! });
      expect(page2.chunk.map((e) => e.event_id)).toEqual([replies[0]]);
      const forward = await bob.sdk.fetchRelations(roomId, root, 'm.thread', null, { dir: Direction.Forward });
      expect(forward.chunk.map((e) => e.event_id)).toEqual(replies);
    });
  });

  describe('reactions and /relations', () => {
    it('finds reactions with rel_type m.annotation and event type m.reaction, does not bundle them, and recurses', async () => {
      const { event_id: target } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'React to me' });
      const { event_id: reaction } = await bob.sdk.sendEvent(roomId, 'm.reaction' as never, { 'm.relates_to': { rel_type: 'm.annotation', event_id: target, key: '👍' } } as never);
      const { event_id: reply } = await bob.sdk.sendMessage(roomId, target, { msgtype: MsgType.Text, body: 'in thread' });
      const { event_id: nested } = await alice.sdk.sendEvent(roomId, 'm.reaction' as never, { 'm.relates_to': { rel_type: 'm.annotation', event_id: reply, key: '🎉' } } as never);

      const annotations = await alice.sdk.fetchRelations(roomId, target, 'm.annotation', 'm.reaction');
      expect(annotations.chunk.map((e) => e.event_id)).toEqual([reaction]);
      expect(await alice.sdk.fetchRelations(roomId, target, 'm.annotation', 'm.room.message')).toMatchObject({ chunk: [] });
      const all = await alice.sdk.fetchRelations(roomId, target, null);
      expect(all.chunk.map((e) => e.event_id)).toEqual([reply, reaction]);

      // m.annotation is not aggregated by servers (event_annotations "Server behaviour").
      const fetched = await alice.sdk.fetchRoomEvent(roomId, target);
      expect(Object.keys(relationsOf(fetched) ?? {})).toEqual(['m.thread']);

      const recursed = await api(alice, 'GET', `/rooms/${enc(roomId)}/relations/${enc(target)}?recurse=true`, undefined, 'v1');
      expect(recursed.status).toBe(200);
      expect((recursed.json['chunk'] as Json[]).map((e) => e['event_id'])).toEqual([nested, reply, reaction]);
      expect(recursed.json['recursion_depth']).toBe(3);
      const direct = await api(alice, 'GET', `/rooms/${enc(roomId)}/relations/${enc(target)}`, undefined, 'v1');
      expect(direct.json['recursion_depth']).toBeUndefined();

      // event_annotations "Avoiding duplicate annotations": the same key again is 400 M_DUPLICATE_ANNOTATION…
      const again = { 'm.relates_to': { rel_type: 'm.annotation', event_id: target, key: '👍' } };
      expect(await matrixError(bob.sdk.sendEvent(roomId, 'm.reaction' as never, again as never))).toMatchObject({ httpStatus: 400, errcode: 'M_DUPLICATE_ANNOTATION' });
      // …unless the first was redacted.
      await bob.sdk.redactEvent(roomId, reaction);
      expect((await bob.sdk.sendEvent(roomId, 'm.reaction' as never, again as never)).event_id).toMatch(/^\$/);
      // threading "Validation of m.thread relationships": no thread off an event with a relation (400 M_UNKNOWN).
      const offReply = { msgtype: 'm.text', body: 'nested thread', 'm.relates_to': { rel_type: 'm.thread', event_id: reply } };
      expect(await matrixError(alice.sdk.sendEvent(roomId, 'm.room.message' as never, offReply as never))).toMatchObject({ httpStatus: 400, errcode: 'M_UNKNOWN' });
    });

    it('answers 404 for a parent the user may not see and 400 for bad parameters', async () => {
      const { room_id: privateRoom } = await alice.sdk.createRoom({ preset: 'private_chat' as never });
      const { event_id: secret } = await alice.sdk.sendMessage(privateRoom, { msgtype: MsgType.Text, body: 'secret' });
      expect(await matrixError(carol.sdk.fetchRelations(privateRoom, secret, null))).toMatchObject({ httpStatus: 404, errcode: 'M_NOT_FOUND' });
      expect(await matrixError(alice.sdk.fetchRelations(privateRoom, '$nope', null))).toMatchObject({ httpStatus: 404, errcode: 'M_NOT_FOUND' });
      for (const query of ['dir=x', 'limit=-1', 'limit=abc', 'from=garbage', 'recurse=maybe']) {
        const bad = await api(alice, 'GET', `/rooms/${enc(privateRoom)}/relations/${enc(secret)}?${query}`, undefined, 'v1');
        expect([query, bad.status, bad.json['errcode']]).toEqual([query, 400, 'M_INVALID_PARAM']);
      }
      const threads = await api(carol, 'GET', `/rooms/${enc(privateRoom)}/threads`, undefined, 'v1');
      expect(threads).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    });
  });

  describe('search', () => {
    const word = `zorb${Math.random().toString(36).slice(2, 8)}`;
    let once: string;
    let twice: string;
    let latest: string;

    beforeAll(async () => {
      ({ event_id: once } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: `the ${word} are coming to dinner tonight` }));
      ({ event_id: twice } = await bob.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: `${word} ${word} everywhere` }));
      await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'nothing to see here' });
      ({ event_id: latest } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: `one more ${word} in a rather long message with many other words in it` }));
    });

    const search = (user: User, roomEvents: Json, nextBatch?: string) =>
      user.sdk.search({ body: { search_categories: { room_events: { search_term: word, ...roomEvents } } } as never, next_batch: nextBatch });

    it('finds messages by term, by rank and by recency, with highlights and a count', async () => {
      const byRank = (await search(bob, {})).search_categories.room_events;
      expect(byRank.count).toBe(3);
      expect(byRank.results!.map((r) => r.result.event_id)).toEqual([twice, once, latest]);
      expect(byRank.results![0].rank).toBeGreaterThan(byRank.results![1].rank);
      expect(byRank.highlights).toContain(word);

      const byRecent = (await search(bob, { order_by: 'recent' })).search_categories.room_events;
      expect(byRecent.results!.map((r) => r.result.event_id)).toEqual([latest, twice, once]);

      const paged = (await search(bob, { order_by: 'recent', filter: { limit: 2 } })).search_categories.room_events;
      expect(paged.results!.map((r) => r.result.event_id)).toEqual([latest, twice]);
      expect(paged.next_batch).toBeTruthy();
      const page2 = (await search(bob, { order_by: 'recent', filter: { limit: 2 } }, paged.next_batch)).search_categories.room_events;
      expect(page2.results!.map((r) => r.result.event_id)).toEqual([once]);
      expect(page2.next_batch).toBeUndefined();

      const onlyBob = (await search(alice, { filter: { senders: [bob.userId] } })).search_categories.room_events;
      expect(onlyBob.results!.map((r) => r.result.event_id)).toEqual([twice]);
    });

    it('gives event context with profiles, groups by room, and nothing from rooms the user never saw', async () => {
      const withContext = (
        await search(bob, { order_by: 'recent', event_context: { before_limit: 1, after_limit: 1, include_profile: true }, groupings: { group_by: [{ key: 'room_id' }] } })
      ).search_categories.room_events;
      const first = withContext.results![0];
      expect(first.result.event_id).toBe(latest);
      expect(first.context!.events_before!.map((e) => (e.content as Json)['body'])).toEqual(['nothing to see here']);
      expect(first.context!.events_after).toEqual([]);
      expect(Object.keys(first.context!.profile_info!)).toContain(alice.userId);
      expect(withContext.groups!['room_id'][roomId].results).toEqual([latest, twice, once]);

      const stranger = await newUser('stranger');
      const none = (await search(stranger, {})).search_categories.room_events;
      expect(none).toMatchObject({ count: 0, results: [] });
    });

    it('rejects bad input with the right errcode', async () => {
      const cases: [unknown, number, string][] = [
        [{}, 400, 'M_MISSING_PARAM'],
        [{ search_categories: { room_events: {} } }, 400, 'M_MISSING_PARAM'],
        [{ search_categories: { room_events: { search_term: 5 } } }, 400, 'M_BAD_JSON'],
        [{ search_categories: { room_events: { search_term: word, order_by: 'oldest' } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: word, keys: ['content.secret'] } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: word, groupings: { group_by: [{ key: 'type' }] } } } }, 400, 'M_INVALID_PARAM'],
        [{ search_categories: { room_events: { search_term: word, event_context: { before_limit: 'x' } } } }, 400, 'M_BAD_JSON'],
      ];
      for (const [body, status, errcode] of cases) {
        const res = await api(bob, 'POST', '/search', body);
        expect([body, res.status, res.json['errcode']]).toEqual([body, status, errcode]);
      }
      const badToken = await api(bob, 'POST', '/search?next_batch=nope', { search_categories: { room_events: { search_term: word } } });
      expect(badToken).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
    });
  });

  describe('reporting', () => {
    it('accepts event, room and user reports', async () => {
      const { event_id: bad } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'something rude' });
      expect(await bob.sdk.reportEvent(roomId, bad, -100, 'rude')).toEqual({});
      expect(await api(bob, 'POST', `/rooms/${enc(roomId)}/report/${enc(bad)}`, {})).toEqual({ status: 200, json: {} });
      expect(await bob.sdk.reportRoom(roomId, '')).toEqual({});
      // Room reports need no membership (report_content.md v1.13).
      expect(await carol.sdk.reportRoom(roomId, 'seen in the directory')).toEqual({});
      expect(await api(carol, 'POST', `/users/${enc(alice.userId)}/report`, { reason: 'harassment' })).toEqual({ status: 200, json: {} });
    });

    it('rejects reports of what the user cannot see, unknown targets and bad bodies', async () => {
      const { event_id: bad } = await alice.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body: 'another' });
      // carol left the room: event reports need a current join (v1.8).
      expect(await matrixError(carol.sdk.reportEvent(roomId, bad, 0, 'x'))).toMatchObject({ httpStatus: 404, errcode: 'M_NOT_FOUND' });
      expect(await matrixError(bob.sdk.reportEvent(roomId, '$unknown', 0, 'x'))).toMatchObject({ httpStatus: 404, errcode: 'M_NOT_FOUND' });
      expect(await matrixError(bob.sdk.reportRoom(`!nope:${server.serverName}`, 'x'))).toMatchObject({ httpStatus: 404, errcode: 'M_NOT_FOUND' });
      expect(await api(bob, 'POST', `/users/${enc(`@nobody_${Date.now()}:${server.serverName}`)}/report`, { reason: 'x' })).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await api(bob, 'POST', `/rooms/${enc(roomId)}/report/${enc(bad)}`, { reason: 5 })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await api(bob, 'POST', `/rooms/${enc(roomId)}/report`, {})).toMatchObject({ status: 400, json: { errcode: 'M_MISSING_PARAM' } });
      expect(await api(bob, 'POST', `/users/${enc(alice.userId)}/report`, '{not json')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
    });
  });
});
