/**
 * Typing notifications, receipts and read markers through matrix-js-sdk (raw
 * fetch where the SDK has no call or checks input itself) against a running
 * server, in both modes. Cluster mode runs two client-api replicas behind the
 * round-robin router, so a typing PUT and the /sync that shows it usually
 * reach different processes.
 *
 * Spec: data/api/client-server/typing.yaml, receipts.yaml, read_markers.yaml;
 * modules typing_notifications.md, receipts.md, read_markers.md.
 */
import { ClientEvent, MatrixEvent, ReceiptType, RoomMemberEvent, type MatrixClient, type RoomMember } from 'matrix-js-sdk';
import type { Mode, TestServer } from '../support/servers';
import { matrixError, uniqueName } from '../support/clients';
import { eventually, rawApi, rawSync, REGISTER_BURST_ENV, roomWithMembers, startWithUsers, type Json, type TestUser } from '../support/fixtures';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-ephemeral-123';

type User = TestUser;

describe.each(modes)('typing, receipts and read markers (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: User;
  let bob: User;
  let carol: User;
  let roomId: string;
  /** Messages alice sent in the room, oldest first. */
  const messages: string[] = [];
  const enc = encodeURIComponent;
  const api = (user: User | null, method: string, path: string, body?: unknown) => rawApi(base, user?.token, method, path, body);
  const sync = (user: User, query: Record<string, string | number | undefined> = {}): Promise<Json> => rawSync(base, user.token, query);

  /** The room's ephemeral events of one type in a sync response. */
  function ephemeral(response: Json, type: string, room = roomId): Json[] {
    const events = (response.rooms?.join?.[room]?.ephemeral?.events ?? []) as Json[];
    return events.filter((e) => e.type === type);
  }

  /** Long-polls from `since` until a response has an ephemeral event of `type` passing `match`; returns it and the next token. */
  async function nextEphemeral(user: User, since: string, type: string, match: (e: Json) => boolean = () => true, room = roomId): Promise<{ event: Json; next: string }> {
    let token = since;
    return eventually(`${type} in ${user.userId}'s sync`, async () => {
      const response = await sync(user, { since: token, timeout: 2_000 });
      token = response.next_batch as string;
      const event = ephemeral(response, type, room).find(match);
      return event ? { event, next: token } : undefined;
    });
  }

  async function send(user: User, body: string, extra: Json = {}): Promise<string> {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${uniqueName('t')}`, { msgtype: 'm.text', body, ...extra });
    expect(res.status).toBe(200);
    return res.json.event_id as string;
  }

  /** A MatrixEvent for the SDK's receipt calls, which only read its ID and room. */
  const eventFor = (eventId: string): MatrixEvent => new MatrixEvent({ event_id: eventId, room_id: roomId, type: 'm.room.message', sender: alice.userId, content: {} });

  beforeAll(async () => {
    const options = { replicas: mode === 'cluster' ? { 'client-api': 2 } : undefined, env: REGISTER_BURST_ENV };
    ({ server, users: [alice, bob, carol] } = await startWithUsers(mode, options, PASSWORD, ['alice', 'bob', 'carol']));
    base = server.baseUrl;
    roomId = await roomWithMembers(base, alice, [bob]);
    for (const body of ['one', 'two', 'three']) messages.push(await send(alice, body));
  });

  afterAll(async () => {
    for (const user of [alice, bob, carol]) user?.sdk.stopClient();
    await server?.stop();
  });

  describe('typing', () => {
    it("sendTyping shows the user typing in the other client's synced room, and stops", async () => {
      const sdk = bob.sdk;
      // Push rules are push-gateway's part and not served yet; the SDK waits for them before syncing.
      sdk.getPushRules = () => Promise.resolve({ global: {} } as Awaited<ReturnType<MatrixClient['getPushRules']>>);
      const ready = new Promise<void>((resolve) => sdk.on(ClientEvent.Sync, (state) => state === 'PREPARED' && resolve()));
      const changes: boolean[] = [];
      sdk.on(RoomMemberEvent.Typing, (_event: MatrixEvent, member: RoomMember) => {
        if (member.userId === alice.userId && member.roomId === roomId) changes.push(member.typing);
      });
      await sdk.startClient({ initialSyncLimit: 5 });
      await ready;

      await alice.sdk.sendTyping(roomId, true, 20_000);
      await eventually('alice typing in bob’s client', () => (sdk.getRoom(roomId)?.getMember(alice.userId)?.typing ? true : undefined));
      await alice.sdk.sendTyping(roomId, false, 0);
      await eventually('alice no longer typing', () => (sdk.getRoom(roomId)?.getMember(alice.userId)?.typing === false ? true : undefined));
      expect(changes).toEqual([true, false]);
      sdk.stopClient();
    });

    it('sends the whole list of typing users, and an empty list when a timeout runs out', async () => {
      const start = (await sync(bob)).next_batch as string;
      expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 1_500 })).status).toBe(200);
      expect((await api(bob, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: true, timeout: 30_000 })).status).toBe(200);
      const both = await nextEphemeral(alice, start, 'm.typing', (e) => (e.content.user_ids as string[]).length === 2);
      expect(new Set(both.event.content.user_ids)).toEqual(new Set([alice.userId, bob.userId]));
      // An initial sync shows who types now.
      expect(ephemeral(await sync(carol), 'm.typing')).toEqual([]);
      expect(new Set(ephemeral(await sync(alice), 'm.typing')[0]?.content.user_ids)).toEqual(new Set([alice.userId, bob.userId]));
      // alice's 1.5 s run out: the server writes the stop itself.
      const after = await nextEphemeral(alice, both.next, 'm.typing', (e) => !(e.content.user_ids as string[]).includes(alice.userId));
      expect(after.event.content.user_ids).toEqual([bob.userId]);
      expect((await api(bob, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(bob.userId)}`, { typing: false })).status).toBe(200);
      const none = await nextEphemeral(alice, after.next, 'm.typing');
      expect(none.event).toEqual({ type: 'm.typing', content: { user_ids: [] } });
    });

    it('a member who leaves while typing is taken off the list', async () => {
      const created = await api(alice, 'POST', '/createRoom', { preset: 'private_chat', invite: [carol.userId] });
      const other = created.json.room_id as string;
      expect((await api(carol, 'POST', `/rooms/${enc(other)}/join`, {})).status).toBe(200);
      const start = (await sync(alice)).next_batch as string;
      expect((await api(carol, 'PUT', `/rooms/${enc(other)}/typing/${enc(carol.userId)}`, { typing: true, timeout: 60_000 })).status).toBe(200);
      const typing = await nextEphemeral(alice, start, 'm.typing', (e) => (e.content.user_ids as string[]).includes(carol.userId), other);
      expect((await api(carol, 'POST', `/rooms/${enc(other)}/leave`, {})).status).toBe(200);
      const after = await nextEphemeral(alice, typing.next, 'm.typing', (e) => !(e.content.user_ids as string[]).includes(carol.userId), other);
      expect(after.event.content.user_ids).toEqual([]);
    });

    it('refuses typing for another user, outside a joined room, and bad bodies', async () => {
      const typingOf = (user: User, target: string, body: unknown, room = roomId) => api(user, 'PUT', `/rooms/${enc(room)}/typing/${enc(target)}`, body);
      expect(await typingOf(alice, bob.userId, { typing: true, timeout: 1000 })).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      expect(await typingOf(carol, carol.userId, { typing: true, timeout: 1000 })).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      expect(await typingOf(carol, carol.userId, { typing: true }, '!nowhere:localhost')).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      expect(await typingOf(alice, alice.userId, { timeout: 1000 })).toMatchObject({ status: 400, json: { errcode: 'M_MISSING_PARAM' } });
      expect(await typingOf(alice, alice.userId, { typing: 'yes' })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await typingOf(alice, alice.userId, { typing: true, timeout: 'long' })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await typingOf(alice, alice.userId, { typing: true, timeout: -5 })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await typingOf(alice, alice.userId, '[1]')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
      expect(await typingOf(alice, alice.userId, { typing: true }, 'not-a-room')).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      const noToken = await fetch(`${base}/_matrix/client/v3/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { method: 'PUT', body: '{"typing":true}' });
      expect(noToken.status).toBe(401);
    });
  });

  describe('receipts', () => {
    it("sendReadReceipt shows in the other user's sync as m.receipt, and in later initial syncs", async () => {
      const start = (await sync(alice)).next_batch as string;
      await bob.sdk.sendReadReceipt(eventFor(messages[1]), ReceiptType.Read, true);
      const { event } = await nextEphemeral(alice, start, 'm.receipt', (e) => e.content[messages[1]] !== undefined);
      expect(event.content[messages[1]]['m.read'][bob.userId]).toEqual({ ts: expect.any(Number) });
      expect(event.content[messages[1]]['m.read'][bob.userId].thread_id).toBeUndefined();
      // A receipt for an older event does not move the marker back.
      await bob.sdk.sendReadReceipt(eventFor(messages[0]), ReceiptType.Read, true);
      const initial = ephemeral(await sync(alice), 'm.receipt');
      expect(initial).toHaveLength(1);
      expect(initial[0].content[messages[1]]['m.read'][bob.userId]).toBeDefined();
      expect(initial[0].content[messages[0]]).toBeUndefined();
    });

    it('threaded receipts carry thread_id and are kept apart from unthreaded ones', async () => {
      const threaded = await send(alice, 'in a thread', { 'm.relates_to': { rel_type: 'm.thread', event_id: messages[0] } });
      const start = (await sync(alice)).next_batch as string;
      // sendReceipt through the SDK with an explicit thread (its own thread detection needs a synced room).
      await bob.sdk.sendReceipt(eventFor(threaded), ReceiptType.Read, { thread_id: messages[0] }, true);
      const { event } = await nextEphemeral(alice, start, 'm.receipt', (e) => e.content[threaded] !== undefined);
      expect(event.content[threaded]['m.read'][bob.userId]).toEqual({ ts: expect.any(Number), thread_id: messages[0] });
      expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(messages[2])}`, { thread_id: 'main' })).status).toBe(200);
      const content = ephemeral(await sync(alice), 'm.receipt')[0].content;
      expect(content[messages[2]]['m.read'][bob.userId].thread_id).toBe('main');
      expect(content[messages[1]]['m.read'][bob.userId].thread_id).toBeUndefined();
      expect(content[threaded]['m.read'][bob.userId].thread_id).toBe(messages[0]);
      // The event must be related to the thread_id.
      const wrong = await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(threaded)}`, { thread_id: 'main' });
      expect(wrong).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      const otherThread = await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(messages[2])}`, { thread_id: messages[0] });
      expect(otherThread).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
    });

    it('private receipts reach their owner only', async () => {
      const aliceStart = (await sync(alice)).next_batch as string;
      const bobStart = (await sync(bob)).next_batch as string;
      await bob.sdk.sendReadReceipt(eventFor(messages[2]), ReceiptType.ReadPrivate, true);
      const own = await nextEphemeral(bob, bobStart, 'm.receipt', (e) => e.content[messages[2]]?.['m.read.private'] !== undefined);
      expect(own.event.content[messages[2]]['m.read.private'][bob.userId]).toEqual({ ts: expect.any(Number) });
      const others = await sync(alice, { since: aliceStart, timeout: 500 });
      for (const e of ephemeral(others, 'm.receipt')) expect(JSON.stringify(e.content)).not.toContain('m.read.private');
      expect(JSON.stringify(ephemeral(await sync(alice), 'm.receipt'))).not.toContain('m.read.private');
      expect(JSON.stringify(ephemeral(await sync(bob), 'm.receipt'))).toContain('m.read.private');
    });

    it('answers the spec errors for bad receipts', async () => {
      const post = (user: User, type: string, eventId: string, body: unknown = {}) => api(user, 'POST', `/rooms/${enc(roomId)}/receipt/${enc(type)}/${enc(eventId)}`, body);
      expect(await post(bob, 'm.unknown', messages[0])).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await post(bob, 'm.read', '$doesnotexist')).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await post(bob, 'm.read', 'not-an-event')).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await post(bob, 'm.read', messages[0], { thread_id: '' })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await post(bob, 'm.read', messages[0], { thread_id: 5 })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await post(bob, 'm.fully_read', messages[0], { thread_id: 'main' })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await post(carol, 'm.read', messages[0])).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      const err = await matrixError(carol.sdk.sendReadReceipt(eventFor(messages[0]), ReceiptType.Read, true));
      expect(err.httpStatus).toBe(403);
    });
  });

  describe('read markers', () => {
    it('setRoomReadMarkers sets the m.fully_read room account data and the m.read receipt', async () => {
      const aliceStart = (await sync(alice)).next_batch as string;
      await bob.sdk.setRoomReadMarkers(roomId, messages[2], eventFor(messages[2]));
      const fullyRead = await eventually('m.fully_read in bob’s sync', async () => {
        const events = ((await sync(bob)).rooms?.join?.[roomId]?.account_data?.events ?? []) as Json[];
        return events.find((e) => e.type === 'm.fully_read');
      });
      expect(fullyRead.content).toEqual({ event_id: messages[2] });
      const stored = await api(bob, 'GET', `/user/${enc(bob.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`);
      expect(stored).toMatchObject({ status: 200, json: { event_id: messages[2] } });
      const { event } = await nextEphemeral(alice, aliceStart, 'm.receipt', (e) => e.content[messages[2]]?.['m.read']?.[bob.userId] !== undefined);
      expect(event.content[messages[2]]['m.read'][bob.userId].ts).toEqual(expect.any(Number));
      // An older marker does not move it back; the receipt endpoint's m.fully_read is the same operation.
      expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/read_markers`, { 'm.fully_read': messages[0] })).status).toBe(200);
      expect((await api(bob, 'GET', `/user/${enc(bob.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`)).json).toEqual({ event_id: messages[2] });
      const newer = await send(alice, 'four');
      expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.fully_read/${enc(newer)}`, {})).status).toBe(200);
      expect((await api(bob, 'GET', `/user/${enc(bob.userId)}/rooms/${enc(roomId)}/account_data/m.fully_read`)).json).toEqual({ event_id: newer });
      // m.fully_read is never an m.receipt.
      expect(JSON.stringify(ephemeral(await sync(alice), 'm.receipt'))).not.toContain('m.fully_read');
    });

    it('answers the spec errors for bad read markers, writing nothing', async () => {
      const markers = (user: User, body: unknown) => api(user, 'POST', `/rooms/${enc(roomId)}/read_markers`, body);
      expect(await markers(bob, { 'm.fully_read': 5 })).toMatchObject({ status: 400, json: { errcode: 'M_BAD_JSON' } });
      expect(await markers(bob, { 'm.read': 'nope' })).toMatchObject({ status: 400, json: { errcode: 'M_INVALID_PARAM' } });
      expect(await markers(bob, { 'm.fully_read': messages[0], 'm.read': '$unknown' })).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await markers(carol, { 'm.fully_read': messages[0] })).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
      expect(await markers(bob, '"text"')).toMatchObject({ status: 400, json: { errcode: 'M_NOT_JSON' } });
      expect((await markers(bob, {})).status).toBe(200);
    });
  });
});
