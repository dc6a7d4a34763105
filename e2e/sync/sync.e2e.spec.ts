/**
 * The sync slice against a running server, in both modes: matrix-js-sdk with
 * startClient() following rooms another user creates, raw /sync long-polls
 * woken by a send, incremental sync that neither misses nor repeats events
 * while 100 events go to several rooms at once, filters (by ID and inline),
 * limited timelines with prev_batch and /messages back-pagination, /context,
 * invites and leaves, and bad input.
 * Spec: data/api/client-server/sync.yaml, filter.yaml, message_pagination.yaml, event_context.yaml.
 */
import { ClientEvent, RoomEvent, type MatrixClient, type MatrixEvent, type Room } from 'matrix-js-sdk';
import type { Mode, TestServer } from '../support/servers';
import { uniqueName } from '../support/clients';
import { eventually, newUser as registerTestUser, rawApi, rawSync, REGISTER_BURST_ENV, startWithUsers, within, type Json, type TestUser } from '../support/fixtures';
import { startNodeProcess, type ManagedProcess } from '../support/process';
import { waitForHttp } from '../support/ports';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-sync-123';

type User = TestUser;

describe.each(modes)('sync (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: User;
  let bob: User;
  let carol: User;
  /** Processes a test started in place of the server's own (the restart test); stopped first. */
  const restarted: ManagedProcess[] = [];

  const newUser = (prefix: string): Promise<User> => registerTestUser(base, prefix, PASSWORD);
  const api = (user: User | null, method: string, path: string, body?: unknown) => rawApi(base, user?.token, method, path, body);
  const sync = (user: User, query: Record<string, string | number | boolean | undefined> = {}): Promise<Json> => rawSync(base, user.token, query);

  async function createRoom(owner: User, options: Json = {}): Promise<string> {
    const res = await api(owner, 'POST', '/createRoom', { preset: 'private_chat', ...options });
    expect(res.status).toBe(200);
    return res.json.room_id as string;
  }

  /**
   * Sends a message. A 503 (the room server busy on a loaded machine) is retried with the same
   * transaction ID, as a client does: the server gives the same event for it, so a retry never
   * makes a second event.
   */
  async function send(user: User, roomId: string, body: string): Promise<string> {
    const txnId = uniqueName('t');
    let res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, { msgtype: 'm.text', body });
    for (let attempt = 0; attempt < 5 && res.status === 503; attempt++) {
      await new Promise((r) => setTimeout(r, 200 * (attempt + 1)));
      res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${txnId}`, { msgtype: 'm.text', body });
    }
    expect([res.status, res.json]).toEqual([200, expect.objectContaining({ event_id: expect.any(String) })]);
    return res.json.event_id as string;
  }

  async function invite(owner: User, roomId: string, user: User): Promise<void> {
    expect((await api(owner, 'POST', `/rooms/${enc(roomId)}/invite`, { user_id: user.userId })).status).toBe(200);
  }

  async function join(user: User, roomId: string): Promise<void> {
    expect((await api(user, 'POST', `/rooms/${enc(roomId)}/join`, {})).status).toBe(200);
  }

  /** A room of `owner` that `member` has joined. */
  async function sharedRoom(owner: User, member: User, options: Json = {}): Promise<string> {
    const roomId = await createRoom(owner, options);
    await invite(owner, roomId, member);
    await join(member, roomId);
    return roomId;
  }

  const enc = encodeURIComponent;

  beforeAll(async () => {
    // Cluster: two client-api replicas behind the round-robin router, so consecutive
    // syncs (and the long-poll and the send that wakes it) land on different processes.
    const options = { replicas: mode === 'cluster' ? { 'client-api': 2 } : undefined, env: REGISTER_BURST_ENV };
    ({ server, users: [alice, bob, carol] } = await startWithUsers(mode, options, PASSWORD, ['alice', 'bob', 'carol']));
    base = server.baseUrl;
  });

  afterAll(async () => {
    for (const proc of restarted) await proc.stop();
    await server?.stop();
  });

  describe('matrix-js-sdk', () => {
    let sdk: MatrixClient | undefined;
    afterEach(() => {
      sdk?.stopClient();
      sdk = undefined;
    });

    it('follows rooms, timelines and state another user creates', async () => {
      const user = await newUser('dana');
      sdk = user.sdk;
      const ready = new Promise<void>((resolve) => {
        sdk!.on(ClientEvent.Sync, (state) => {
          if (state === 'PREPARED') resolve();
        });
      });
      const seen: string[] = [];
      sdk.on(RoomEvent.Timeline, (event: MatrixEvent, room: Room | undefined) => {
        if (event.getType() === 'm.room.message') seen.push(`${room?.roomId}|${event.getContent().body as string}`);
      });
      await sdk.startClient({ initialSyncLimit: 10 });
      await within('the SDK initial sync', ready);

      const roomId = await createRoom(alice, { name: 'Sync test room', topic: 'about sync' });
      await invite(alice, roomId, user);
      const invited = await eventually('the invite in the SDK', () => {
        const room = sdk!.getRoom(roomId);
        return room?.getMyMembership() === 'invite' ? room : undefined;
      });
      expect(invited.name).toBe('Sync test room');

      await sdk.joinRoom(roomId);
      await send(alice, roomId, 'hello from alice');
      await eventually('the message in the SDK timeline', () => (seen.includes(`${roomId}|hello from alice`) ? true : undefined));
      const room = sdk.getRoom(roomId)!;
      expect(room.getMyMembership()).toBe('join');
      expect(room.name).toBe('Sync test room');
      expect(room.currentState.getStateEvents('m.room.topic', '')?.getContent().topic).toBe('about sync');
      expect(room.getMember(alice.userId)?.membership).toBe('join');

      // A state change by alice arrives as state.
      expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.name`, { name: 'Renamed' })).status).toBe(200);
      await eventually('the new name', () => (sdk!.getRoom(roomId)?.name === 'Renamed' ? true : undefined));
    });
  });

  describe('raw /sync', () => {
    it('gives an initial sync with joined room state, timeline, summary and next_batch', async () => {
      const roomId = await sharedRoom(alice, bob, { name: 'Initial' });
      const eventId = await send(alice, roomId, 'first');
      const body = await sync(bob);
      expect(body.next_batch).toMatch(/^s\d+/);
      const room = body.rooms.join[roomId];
      expect(room).toBeDefined();
      expect(room.timeline.events.map((e: Json) => e.event_id)).toContain(eventId);
      expect(typeof room.timeline.prev_batch).toBe('string');
      const types = [...room.state.events, ...room.timeline.events].map((e: Json) => e.type);
      expect(types).toEqual(expect.arrayContaining(['m.room.create', 'm.room.power_levels', 'm.room.name']));
      expect(room.summary['m.joined_member_count']).toBe(2);
      expect(room.summary['m.heroes']).toEqual([alice.userId]);
      // Counts come from the push rules section once it is there; the shape is always given.
      expect(room.unread_notifications).toEqual({ highlight_count: expect.any(Number), notification_count: expect.any(Number) });
      // ClientEventWithoutRoomID in /sync.
      expect(room.timeline.events[0].room_id).toBeUndefined();
      // r0 answers too.
      const r0 = await fetch(`${base}/_matrix/client/r0/sync`, { headers: { authorization: `Bearer ${bob.token}` } });
      expect(r0.status).toBe(200);
    });

    it('wakes a long-poll when a message is sent, and returns at the timeout otherwise', async () => {
      const roomId = await sharedRoom(alice, bob);
      const { next_batch: since } = await sync(bob);

      const started = Date.now();
      const idle = await sync(bob, { since, timeout: 500 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(450);
      expect(idle.rooms.join[roomId]).toBeUndefined();

      const poll = sync(bob, { since: idle.next_batch, timeout: 30_000 });
      await new Promise((r) => setTimeout(r, 300));
      const sentAt = Date.now();
      const eventId = await send(alice, roomId, 'wake up');
      const woken = await poll;
      expect(Date.now() - sentAt).toBeLessThan(5_000);
      expect(woken.rooms.join[roomId].timeline.events.map((e: Json) => e.event_id)).toEqual([eventId]);
      expect(woken.rooms.join[roomId].timeline.limited).toBe(false);
      if (mode === 'embedded') {
        // ARCHITECTURE.md "Observability": sync wake-ups are counted.
        const metrics = await (await fetch(`${server.services.atrium}/metrics`)).text();
        const count = Number(/^atrium_sync_wakeups_total(?:\{[^}]*\})? (\d+)/m.exec(metrics)?.[1] ?? 0);
        expect(count).toBeGreaterThanOrEqual(1);
      }
    });

    it('neither misses nor repeats events while 100 are sent to several rooms at once', async () => {
      // Room version 12 derives the room ID from the create event, so two rooms created by one user in
      // the same millisecond with the same content would be one room: a nonce keeps these four apart.
      const rooms = await Promise.all([0, 1, 2, 3].map(() => sharedRoom(alice, bob, { creation_content: { 'org.atrium.test.nonce': uniqueName('n') } })));
      expect(new Set(rooms).size).toBe(4);
      const filter = JSON.stringify({ room: { timeline: { limit: 500, types: ['m.room.message'] } } });
      let since = (await sync(bob, { filter })).next_batch as string;

      const expected = new Set<string>();
      const received: string[] = [];
      let sending = true;
      const sender = (async () => {
        try {
          // 100 sends, 10 in flight at a time, spread over the rooms.
          let next = 0;
          const worker = async (): Promise<void> => {
            for (let i = next++; i < 100; i = next++) expected.add(await send(alice, rooms[i % rooms.length], `burst ${i}`));
          };
          await Promise.all(Array.from({ length: 10 }, worker));
        } finally {
          sending = false;
        }
      })();

      // Bounded in time below the 120 s test timeout: sends in the cluster on a loaded machine can be slow.
      const deadline = Date.now() + 100_000;
      for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
        const body = await sync(bob, { since, filter, timeout: 1000 });
        for (const roomId of rooms) {
          const room = body.rooms.join[roomId];
          if (!room) continue;
          expect(room.timeline.limited).toBe(false);
          for (const e of room.timeline.events) received.push(e.event_id as string);
        }
        since = body.next_batch;
        if (!sending && new Set(received).size >= 100) break;
      }
      await sender;
      expect(expected.size).toBe(100);
      expect(new Set(received).size).toBe(received.length);
      expect(new Set(received)).toEqual(expected);
    });

    it('shows invites under rooms.invite with stripped state, and leaves under rooms.leave', async () => {
      const { next_batch: since } = await sync(carol);
      const roomId = await createRoom(alice, { name: 'Invite me' });
      await invite(alice, roomId, carol);
      const invited = await sync(carol, { since, timeout: 10_000 });
      const inviteState = invited.rooms.invite[roomId].invite_state.events as Json[];
      expect(inviteState.find((e) => e.type === 'm.room.member' && e.state_key === carol.userId)).toMatchObject({ sender: alice.userId, content: { membership: 'invite' } });
      expect(inviteState.find((e) => e.type === 'm.room.name')?.content.name).toBe('Invite me');
      expect(inviteState.every((e) => e.event_id === undefined)).toBe(true);

      await join(carol, roomId);
      const joined = await sync(carol, { since: invited.next_batch, timeout: 10_000 });
      expect(joined.rooms.join[roomId]).toBeDefined();
      expect(joined.rooms.invite[roomId]).toBeUndefined();
      // A room joined since the last sync comes with its full state.
      expect(joined.rooms.join[roomId].state.events.map((e: Json) => e.type)).toContain('m.room.create');

      expect((await api(carol, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
      const left = await sync(carol, { since: joined.next_batch, timeout: 10_000 });
      expect(left.rooms.join[roomId]).toBeUndefined();
      const leaveTimeline = left.rooms.leave[roomId].timeline.events as Json[];
      expect(leaveTimeline[leaveTimeline.length - 1]).toMatchObject({ type: 'm.room.member', state_key: carol.userId, content: { membership: 'leave' } });
      // Leaving carries the previous membership in unsigned.prev_content.
      expect(leaveTimeline[leaveTimeline.length - 1].unsigned.prev_content).toMatchObject({ membership: 'join' });

      // After leaving, alice's messages no longer reach carol.
      await send(alice, roomId, 'after carol left');
      const later = await sync(carol, { since: left.next_batch });
      expect(later.rooms.join[roomId]).toBeUndefined();
      expect(later.rooms.leave[roomId]).toBeUndefined();

      // An initial sync shows left rooms only with include_leave.
      expect((await sync(carol)).rooms.leave[roomId]).toBeUndefined();
      const withLeave = await sync(carol, { filter: JSON.stringify({ room: { include_leave: true } }) });
      expect(withLeave.rooms.leave[roomId]).toBeDefined();
    });

    it('shows a knock under rooms.knock, and a ban under rooms.leave', async () => {
      const frank = await newUser('frank');
      const roomId = await createRoom(alice, { name: 'Knock here', initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'knock' } }] });
      const { next_batch: since } = await sync(frank);
      expect((await api(frank, 'POST', `/knock/${enc(roomId)}`, {})).status).toBe(200);
      const knocked = await sync(frank, { since, timeout: 10_000 });
      const knockState = knocked.rooms.knock[roomId].knock_state.events as Json[];
      expect(knockState.find((e) => e.type === 'm.room.member' && e.state_key === frank.userId)?.content.membership).toBe('knock');
      expect(knockState.find((e) => e.type === 'm.room.join_rules')?.content.join_rule).toBe('knock');

      expect((await api(alice, 'POST', `/rooms/${enc(roomId)}/ban`, { user_id: frank.userId, reason: 'no' })).status).toBe(200);
      const banned = await sync(frank, { since: knocked.next_batch, timeout: 10_000 });
      expect(banned.rooms.knock[roomId]).toBeUndefined();
      const events = banned.rooms.leave[roomId].timeline.events as Json[];
      expect(events[events.length - 1]).toMatchObject({ type: 'm.room.member', state_key: frank.userId, content: { membership: 'ban' } });
    });

    it('gives limited timelines with a prev_batch that /messages pages back from', async () => {
      const roomId = await sharedRoom(alice, bob);
      const { next_batch: since } = await sync(bob);
      const sent: string[] = [];
      for (let i = 0; i < 15; i++) sent.push(await send(alice, roomId, `msg ${i}`));

      const body = await sync(bob, { since, filter: JSON.stringify({ room: { timeline: { limit: 5 } } }) });
      const timeline = body.rooms.join[roomId].timeline;
      expect(timeline.limited).toBe(true);
      expect(timeline.events.map((e: Json) => e.event_id)).toEqual(sent.slice(10));

      // Back-paginate from prev_batch until `end` is absent (bounded).
      const older: string[] = [];
      let from: string | undefined = timeline.prev_batch;
      for (let page = 0; page < 50 && from; page++) {
        const res = await api(bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=4&from=${enc(from)}`);
        expect(res.status).toBe(200);
        expect(res.json.start).toBe(from);
        for (const e of res.json.chunk) older.push(e.event_id);
        from = res.json.end;
      }
      const olderMessages = older.filter((id) => sent.includes(id));
      expect(olderMessages).toEqual(sent.slice(0, 10).reverse());
      expect(new Set(older).size).toBe(older.length);
      expect(older.some((id) => timeline.events.some((e: Json) => e.event_id === id))).toBe(false);

      // Forward from the start (no `from`, v1.3) reaches the create event first.
      const forward = await api(bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=f&limit=3`);
      expect(forward.status).toBe(200);
      expect(forward.json.chunk[0].type).toBe('m.room.create');
      expect(forward.json.chunk[0].room_id).toBe(roomId);
      expect(typeof forward.json.end).toBe('string');

      // Backward without `from`: the newest first, filtered to messages, with lazy-loaded members in `state`.
      const filter = enc(JSON.stringify({ types: ['m.room.message'], lazy_load_members: true }));
      const latest = await api(bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=3&filter=${filter}`);
      expect(latest.json.chunk.map((e: Json) => e.event_id)).toEqual(sent.slice(12).reverse());
      expect(latest.json.state.map((e: Json) => e.state_key)).toEqual([alice.userId]);

      // /context around the eighth message.
      const context = await api(bob, 'GET', `/rooms/${enc(roomId)}/context/${enc(sent[7])}?limit=4&filter=${enc(JSON.stringify({ types: ['m.room.message'] }))}`);
      expect(context.status).toBe(200);
      expect(context.json.event.event_id).toBe(sent[7]);
      expect(context.json.events_before.map((e: Json) => e.event_id)).toEqual([sent[6], sent[5]]);
      expect(context.json.events_after.map((e: Json) => e.event_id)).toEqual([sent[8], sent[9]]);
      expect(typeof context.json.start).toBe('string');
      expect(typeof context.json.end).toBe('string');
      expect(context.json.state.map((e: Json) => e.type)).toContain('m.room.create');
      // Paging back from the context's start continues before events_before.
      const beforeContext = await api(bob, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=1&from=${enc(context.json.start)}&filter=${enc(JSON.stringify({ types: ['m.room.message'] }))}`);
      expect(beforeContext.json.chunk.map((e: Json) => e.event_id)).toEqual([sent[4]]);
    });

    it('lazy-loads members: senders and the user on full state, new senders later, all again with include_redundant_members', async () => {
      const dave = await newUser('dave');
      const erin = await newUser('erin');
      const roomId = await sharedRoom(alice, bob);
      for (const user of [dave, erin]) {
        await invite(alice, roomId, user);
        await join(user, roomId);
      }
      await send(alice, roomId, 'lazy 1');
      await send(alice, roomId, 'lazy 2');
      const lazy = JSON.stringify({ room: { rooms: [roomId], state: { lazy_load_members: true }, timeline: { limit: 2 } } });
      const members = (room: Json): string[] => (room.state.events as Json[]).filter((e) => e.type === 'm.room.member').map((e) => e.state_key as string).sort();

      const initial = await sync(bob, { filter: lazy });
      const room = initial.rooms.join[roomId];
      expect(room.timeline.limited).toBe(true);
      expect(members(room)).toEqual([alice.userId, bob.userId].sort());
      // Other state still comes in full.
      expect((room.state.events as Json[]).map((e) => e.type)).toContain('m.room.create');
      // The summary still counts everyone.
      expect(room.summary['m.joined_member_count']).toBe(4);

      await send(dave, roomId, 'dave speaks');
      await send(alice, roomId, 'alice again');
      const next = await sync(bob, { filter: lazy, since: initial.next_batch });
      // dave's membership is new to this device; alice's was sent already.
      expect(members(next.rooms.join[roomId])).toEqual([dave.userId]);

      await send(alice, roomId, 'once more');
      const redundant = JSON.stringify({ room: { rooms: [roomId], state: { lazy_load_members: true, include_redundant_members: true }, timeline: { limit: 2 } } });
      const again = await sync(bob, { filter: redundant, since: next.next_batch });
      expect(members(again.rooms.join[roomId])).toEqual([alice.userId]);
      const without = await sync(bob, { filter: lazy, since: next.next_batch });
      expect(members(without.rooms.join[roomId] ?? { state: { events: [] } })).toEqual([]);
    });

    it('keeps history from non-members and events from before a joined-only join', async () => {
      const roomId = await createRoom(alice, { initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'joined' } }] });
      const secret = await send(alice, roomId, 'before carol');
      const outsider = await api(carol, 'GET', `/rooms/${enc(roomId)}/messages?dir=b`);
      expect(outsider.status).toBe(403);
      expect(outsider.json.errcode).toBe('M_FORBIDDEN');
      expect((await api(carol, 'GET', `/rooms/${enc(roomId)}/context/${enc(secret)}`)).status).toBe(403);

      await invite(alice, roomId, carol);
      await join(carol, roomId);
      const after = await send(alice, roomId, 'after carol');
      const page = await api(carol, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=50`);
      const ids = page.json.chunk.map((e: Json) => e.event_id);
      expect(ids).toContain(after);
      expect(ids).not.toContain(secret);
      expect((await api(carol, 'GET', `/rooms/${enc(roomId)}/context/${enc(secret)}`)).json.errcode).toBe('M_NOT_FOUND');
      const initial = await sync(carol);
      const timelineIds = initial.rooms.join[roomId].timeline.events.map((e: Json) => e.event_id);
      expect(timelineIds).toContain(after);
      expect(timelineIds).not.toContain(secret);
    });
  });

  describe('filters', () => {
    it('stores a filter and gives it back; only to its owner', async () => {
      const filter = { room: { timeline: { limit: 2, types: ['m.room.message'] } }, event_fields: ['type', 'content.body', 'event_id'] };
      const created = await api(bob, 'POST', `/user/${enc(bob.userId)}/filter`, filter);
      expect(created.status).toBe(200);
      const filterId = created.json.filter_id as string;
      expect(filterId.startsWith('{')).toBe(false);
      const fetched = await api(bob, 'GET', `/user/${enc(bob.userId)}/filter/${enc(filterId)}`);
      expect(fetched.json).toEqual(filter);
      // The same filter again gets the same ID.
      expect((await api(bob, 'POST', `/user/${enc(bob.userId)}/filter`, filter)).json.filter_id).toBe(filterId);
      // The SDK's own filter upload works too.
      const sdkFilterId = await bob.sdk.createFilter({ room: { timeline: { limit: 3 } } }).then((f) => f.filterId);
      expect(typeof sdkFilterId).toBe('string');

      expect((await api(alice, 'GET', `/user/${enc(bob.userId)}/filter/${enc(filterId)}`)).json.errcode).toBe('M_FORBIDDEN');
      expect((await api(alice, 'POST', `/user/${enc(bob.userId)}/filter`, {})).status).toBe(403);
      const missing = await api(bob, 'GET', `/user/${enc(bob.userId)}/filter/nope`);
      expect(missing.status).toBe(404);
      expect(missing.json.errcode).toBe('M_NOT_FOUND');

      // By ID in /sync: only messages, the last 2, projected to event_fields.
      const roomId = await sharedRoom(alice, bob);
      const { next_batch: since } = await sync(bob);
      await send(alice, roomId, 'one');
      await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: 'not a message' });
      await send(alice, roomId, 'two');
      await send(alice, roomId, 'three');
      const body = await sync(bob, { since, filter: filterId });
      const events = body.rooms.join[roomId].timeline.events as Json[];
      expect(events.map((e) => e.content.body)).toEqual(['two', 'three']);
      expect(Object.keys(events[0]).sort()).toEqual(['content', 'event_id', 'type']);
      expect(body.rooms.join[roomId].timeline.limited).toBe(true);
    });

    it('applies inline filters: rooms, not_rooms and senders', async () => {
      const roomA = await sharedRoom(alice, bob);
      const roomB = await sharedRoom(alice, bob);
      const { next_batch: since } = await sync(bob);
      await send(alice, roomA, 'in A');
      await send(alice, roomB, 'in B');
      await send(bob, roomB, 'bob in B');
      const notB = await sync(bob, { since, filter: JSON.stringify({ room: { not_rooms: [roomB] } }) });
      expect(notB.rooms.join[roomA]).toBeDefined();
      expect(notB.rooms.join[roomB]).toBeUndefined();
      const onlyB = await sync(bob, { since, filter: JSON.stringify({ room: { rooms: [roomA, roomB], not_rooms: [roomA], timeline: { senders: [bob.userId] } } }) });
      expect(onlyB.rooms.join[roomA]).toBeUndefined();
      expect(onlyB.rooms.join[roomB].timeline.events.map((e: Json) => e.content.body)).toEqual(['bob in B']);
      // event_format federation gives the PDUs as stored (hashes, signatures, depth, prev_events).
      const federation = await sync(bob, { since, filter: JSON.stringify({ event_format: 'federation', room: { rooms: [roomA], timeline: { types: ['m.room.message'] } } }) });
      const pdu = federation.rooms.join[roomA].timeline.events[0] as Json;
      expect(pdu.content.body).toBe('in A');
      expect(pdu).toEqual(expect.objectContaining({ hashes: expect.any(Object), signatures: expect.any(Object), depth: expect.any(Number), prev_events: expect.any(Array) }));
    });

    it('refuses bad filters and bad parameters with the right errcode, never a 500', async () => {
      const post = (body: unknown) => api(bob, 'POST', `/user/${enc(bob.userId)}/filter`, body);
      expect((await post({ room: { timeline: { limit: 'ten' } } })).json.errcode).toBe('M_BAD_JSON');
      const zero = await post({ room: { timeline: { limit: 0 } } });
      expect(zero.status).toBe(400);
      expect(zero.json.errcode).toBe('M_INVALID_PARAM');
      expect(zero.json.error).toContain('room.timeline.limit');
      expect((await post({ event_format: 'xml' })).json.errcode).toBe('M_INVALID_PARAM');
      expect((await post({ room: { rooms: ['not-a-room'] } })).json.errcode).toBe('M_INVALID_PARAM');
      expect((await post('[1,2]')).status).toBe(400);

      const bad = async (path: string, errcode: string) => {
        const res = await api(bob, 'GET', path);
        expect([path, res.status]).toEqual([path, 400]);
        expect([path, res.json.errcode]).toEqual([path, errcode]);
      };
      await bad('/sync?since=garbage', 'M_INVALID_PARAM');
      await bad('/sync?since=s999999999', 'M_INVALID_PARAM');
      await bad('/sync?timeout=soon', 'M_INVALID_PARAM');
      await bad('/sync?full_state=maybe', 'M_INVALID_PARAM');
      await bad('/sync?set_presence=busy', 'M_INVALID_PARAM');
      await bad('/sync?filter=unknownfilter', 'M_INVALID_PARAM');
      await bad(`/sync?filter=${enc('{not json')}`, 'M_INVALID_PARAM');
      await bad(`/sync?filter=${enc('{"room":{"timeline":{"limit":-1}}}')}`, 'M_INVALID_PARAM');
      const roomId = await sharedRoom(alice, bob);
      await bad(`/rooms/${enc(roomId)}/messages`, 'M_MISSING_PARAM');
      await bad(`/rooms/${enc(roomId)}/messages?dir=up`, 'M_INVALID_PARAM');
      await bad(`/rooms/${enc(roomId)}/messages?dir=b&from=xyz`, 'M_INVALID_PARAM');
      await bad(`/rooms/${enc(roomId)}/messages?dir=b&limit=-5`, 'M_INVALID_PARAM');
      await bad(`/rooms/${enc(roomId)}/messages?dir=b&filter=${enc('{"types":"x"}')}`, 'M_BAD_JSON');
      expect((await api(bob, 'GET', `/rooms/${enc(roomId)}/context/${enc('$nope')}`)).status).toBe(404);

      // full_state, set_presence and a valid since are accepted.
      const { next_batch } = await sync(bob);
      const full = await sync(bob, { since: next_batch, full_state: true, set_presence: 'offline', timeout: 30_000 });
      expect(full.rooms.join[roomId].state.events.map((e: Json) => e.type)).toContain('m.room.create');
    });
  });

  describe('use_state_after (sync.yaml v1.16; MSC4222, which matrix-js-sdk sends)', () => {
    const stateAfter = (room: Json, key = 'state_after'): Json[] => {
      expect(room).not.toHaveProperty('state');
      expect(room[key]).toBeDefined();
      return room[key].events as Json[];
    };
    const keysOf = (events: Json[]): string[] => events.map((e) => `${e.type}|${e.state_key}`).sort();

    it('initial: the state at the end of the timeline, state events of the timeline included; `state` omitted', async () => {
      const roomId = await sharedRoom(alice, bob, { name: 'Before' });
      expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.name`, { name: 'After' })).status).toBe(200);
      const body = await sync(bob, { use_state_after: true, filter: JSON.stringify({ room: { rooms: [roomId] } }) });
      const room = body.rooms.join[roomId];
      const state = stateAfter(room);
      // The rename is the newest event, in the timeline and in state_after as the name at its end.
      expect(room.timeline.events.at(-1)).toMatchObject({ type: 'm.room.name', content: { name: 'After' } });
      expect(state.filter((e) => e.type === 'm.room.name').map((e) => e.content.name)).toEqual(['After']);
      expect(keysOf(state)).toEqual(expect.arrayContaining(['m.room.create|', 'm.room.power_levels|', `m.room.member|${alice.userId}`, `m.room.member|${bob.userId}`]));
      // Without the parameter (or with false): `state`, at the start of the timeline, and no state_after.
      for (const query of [{}, { use_state_after: false }]) {
        const plain = (await sync(bob, { ...query, filter: JSON.stringify({ room: { rooms: [roomId] } }) })).rooms.join[roomId];
        expect(plain).not.toHaveProperty('state_after');
        expect(plain.state).toBeDefined();
      }
    });

    it('incremental: the changes between since and the end of the timeline; an empty list for a room with only ephemeral news', async () => {
      const roomId = await sharedRoom(alice, bob);
      const { next_batch: since } = await sync(bob, { use_state_after: true });
      expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: 'new topic' })).status).toBe(200);
      await send(alice, roomId, 'after the topic');
      const body = await sync(bob, { since, use_state_after: true });
      const state = stateAfter(body.rooms.join[roomId]);
      expect(keysOf(state)).toEqual(['m.room.topic|']);
      expect(state[0].content).toEqual({ topic: 'new topic' });

      // A limited timeline: the topic change fell in the gap before it and is still given.
      const { next_batch: since2 } = await sync(bob, { use_state_after: true });
      expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/state/m.room.topic`, { topic: 'newer topic' })).status).toBe(200);
      for (let i = 0; i < 3; i++) await send(alice, roomId, `filler ${i}`);
      const limited = (await sync(bob, { since: since2, use_state_after: true, filter: JSON.stringify({ room: { timeline: { limit: 2 } } }) })).rooms.join[roomId];
      expect(limited.timeline.limited).toBe(true);
      expect(stateAfter(limited).map((e) => e.content.topic)).toEqual(['newer topic']);

      // Typing only: the room is there with an empty state_after, as the spec requires the key.
      const { next_batch: since3 } = await sync(bob, { use_state_after: true });
      expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 10_000 })).status).toBe(200);
      const typing = (await sync(bob, { since: since3, use_state_after: true, timeout: 5_000 })).rooms.join[roomId];
      expect(typing.ephemeral.events.map((e: Json) => e.type)).toContain('m.typing');
      expect(stateAfter(typing)).toEqual([]);
    });

    it('the MSC4222 name answers under org.matrix.msc4222.state_after; left rooms too; lazy members of the senders; bad values are M_INVALID_PARAM', async () => {
      const dave = await newUser('dave');
      const roomId = await sharedRoom(alice, bob);
      await invite(alice, roomId, dave);
      await join(dave, roomId);
      await send(dave, roomId, 'from dave');
      const lazy = JSON.stringify({ room: { rooms: [roomId], state: { lazy_load_members: true } } });
      const body = await sync(bob, { 'org.matrix.msc4222.use_state_after': true, filter: lazy });
      const room = body.rooms.join[roomId];
      expect(room).not.toHaveProperty('state_after');
      const state = stateAfter(room, 'org.matrix.msc4222.state_after');
      // Lazy-loading: the members of the timeline's senders and bob himself; not every member.
      const members = state.filter((e) => e.type === 'm.room.member').map((e) => e.state_key);
      expect(members).toEqual(expect.arrayContaining([bob.userId, dave.userId]));
      expect(state.some((e) => e.type === 'm.room.create')).toBe(true);

      // dave leaves: his left room carries state_after up to the leave.
      const { next_batch: since } = await sync(dave, { use_state_after: true });
      expect((await api(dave, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
      const left = (await sync(dave, { since, use_state_after: true })).rooms.leave[roomId];
      expect(stateAfter(left).filter((e) => e.type === 'm.room.member' && e.state_key === dave.userId).map((e) => e.content.membership)).toEqual(['leave']);

      for (const query of ['use_state_after=yes', 'org.matrix.msc4222.use_state_after=1']) {
        const bad = await api(bob, 'GET', `/sync?${query}`);
        expect([bad.status, bad.json.errcode]).toEqual([400, 'M_INVALID_PARAM']);
      }
    });
  });

  // Last, as it restarts the server. Embedded only: there the whole server is one process whose
  // command line and environment the test knows; in the cluster the two client-api replicas
  // already show that a token is not tied to the process that issued it.
  (mode === 'embedded' ? it : it.skip)('keeps sync tokens valid across a restart', async () => {
    const roomId = await sharedRoom(alice, bob);
    const before = await send(alice, roomId, 'before restart');
    const { next_batch: since } = await sync(bob);

    const [original] = server.processes;
    const [, script, ...args] = original.child.spawnargs;
    await original.stop();
    const proc = startNodeProcess('atrium-restarted', script.replace(/^.*?(dist\/)/, '$1'), args, {
      ATRIUM_TELEMETRY__LOG_LEVEL: 'warn',
      ATRIUM_REGISTRATION__ALLOW_GUESTS: 'true',
      ATRIUM_RATE_LIMITS__REGISTER__BURST: '100',
      ATRIUM_RATE_LIMITS__REGISTER__PER_SECOND: '10',
      ATRIUM_PUBLIC_BASEURL: `${base}/`,
      ATRIUM_LISTENERS__CLIENT__HOST: '127.0.0.1',
      ATRIUM_LISTENERS__FEDERATION__HOST: '127.0.0.1',
    });
    restarted.push(proc);
    await waitForHttp(`${base}/health`, 30_000, proc.alive);

    // The old token still reads from where it was: nothing old again, the new message once.
    const after = await send(alice, roomId, 'after restart');
    const body = await sync(bob, { since, timeout: 10_000 });
    const ids = body.rooms.join[roomId].timeline.events.map((e: Json) => e.event_id);
    expect(ids).toEqual([after]);
    expect(ids).not.toContain(before);
  });
});
