/**
 * Push rules, unread notification counts, GET /notifications and HTTP
 * pushers, through matrix-js-sdk (raw fetch where the SDK has no call or
 * checks input itself) against a running server, in both modes. In cluster
 * mode the push gateway is its own process; the test plays the push gateway
 * peer with a real HTTP server on 127.0.0.1.
 *
 * Spec: client-server-api modules/push.md; data/api/client-server/
 * pushrules.yaml, pusher.yaml, notifications.yaml, sync.yaml
 * (unread_notifications, unread_thread_notifications);
 * data/api/push-gateway/push_notifier.yaml.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PushRuleActionName, PushRuleKind } from 'matrix-js-sdk';
import type { Mode, TestServer } from '../support/servers';
import { matrixError, uniqueName } from '../support/clients';
import { eventually as pollUntil, newUser as registerTestUser, rawApi, rawSync, REGISTER_BURST_ENV, roomWithMembers, startWithUsers, type Json, type TestUser } from '../support/fixtures';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-push-12345';

type User = TestUser;

/** Polls `check` every 100 ms until it returns a value, at most `ms`. */
const eventually = <T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 20_000): Promise<T> => pollUntil(what, check, ms, 100);

/** A push gateway peer: records every POST /_matrix/push/v1/notify and answers `rejected` as configured per pushkey. */
class GatewayPeer {
  readonly received: Json[] = [];
  readonly rejectKeys = new Set<string>();
  private server?: Server;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/_matrix/push/v1/notify') {
          res.writeHead(404).end();
          return;
        }
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json;
        this.received.push(body);
        const keys = ((body.notification?.devices ?? []) as Json[]).map((d) => d.pushkey as string);
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ rejected: keys.filter((k) => this.rejectKeys.has(k)) }));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server!.address() as AddressInfo).port}/_matrix/push/v1/notify`;
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

describe.each(modes)('push rules, counts and pushers (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: User;
  let bob: User;
  let carol: User;
  let roomId: string;
  const gateway = new GatewayPeer();
  const enc = encodeURIComponent;
  const newUser = (prefix: string): Promise<User> => registerTestUser(base, prefix, PASSWORD);
  const api = (user: User | null, method: string, path: string, body?: unknown) => rawApi(base, user?.token, method, path, body);
  const sync = (user: User, query: Record<string, string | number | undefined> = {}): Promise<Json> => rawSync(base, user.token, query);

  /**
   * Setup requests retried on 503 (the room server's answer did not come in
   * time: a loaded machine right after start); at most 3 attempts. A repeated
   * createRoom only makes a spare room; joins are idempotent.
   */
  async function setupCall(call: () => Promise<{ status: number; json: Json }>): Promise<{ status: number; json: Json }> {
    let result = await call();
    for (let attempt = 1; attempt < 3 && result.status === 503; attempt++) {
      await new Promise((r) => setTimeout(r, 1000));
      result = await call();
    }
    return result;
  }

  async function send(user: User, body: string, extra: Json = {}): Promise<string> {
    const res = await api(user, 'PUT', `/rooms/${enc(roomId)}/send/m.room.message/${uniqueName('t')}`, { msgtype: 'm.text', body, ...extra });
    expect(res.status).toBe(200);
    return res.json.event_id as string;
  }

  /** Bob's counts in the room from a fresh initial sync (what a restarted client sees). */
  async function initialCounts(user: User, filter?: Json): Promise<Json> {
    const response = await sync(user, { filter: filter ? JSON.stringify(filter) : undefined });
    return response.rooms.join[roomId] as Json;
  }

  /** Bob's counts once they equal `want` (the push gateway may trail; /sync must not). */
  async function countsBecome(user: User, want: { notification_count: number; highlight_count: number }): Promise<void> {
    await eventually(`counts ${JSON.stringify(want)}`, async () => {
      const room = await initialCounts(user);
      const got = room?.unread_notifications;
      return got && got.notification_count === want.notification_count && got.highlight_count === want.highlight_count ? true : undefined;
    });
  }

  beforeAll(async () => {
    await gateway.start();
    ({ server, users: [alice, bob, carol] } = await startWithUsers(mode, { env: REGISTER_BURST_ENV }, PASSWORD, ['alice', 'bob', 'carol']));
    base = server.baseUrl;
    // Three members, so the one-to-one rules stay out of the way: a plain message is .m.rule.message (notify, no highlight).
    roomId = await roomWithMembers(base, alice, [bob, carol], setupCall);
  });

  afterAll(async () => {
    for (const user of [alice, bob, carol]) user?.sdk.stopClient();
    await server?.stop();
    await gateway.stop();
  });

  it('a message and a mention raise the unread counts in the same /sync response as the events', async () => {
    const start = await sync(bob);
    expect(start.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
    let token = start.next_batch as string;
    await send(alice, 'hello everyone');
    const mention = await send(alice, 'bob, look at this', { 'm.mentions': { user_ids: [bob.userId] } });
    const seen = await eventually('the mention in bob\'s sync', async () => {
      const response = await sync(bob, { since: token, timeout: 2000 });
      token = response.next_batch as string;
      const room = response.rooms?.join?.[roomId] as Json | undefined;
      const hasMention = ((room?.timeline?.events ?? []) as Json[]).some((e) => e.event_id === mention);
      return hasMention ? room : undefined;
    });
    // "The updated notification count from a new event MUST appear in the same /sync response as the event itself."
    expect(seen!.unread_notifications).toEqual({ notification_count: 2, highlight_count: 1 });
    // The sender's own messages never count for her.
    expect((await initialCounts(alice)).unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
  });

  it('a room that is in a /sync response only for typing still carries its real counts', async () => {
    const token = (await sync(bob)).next_batch as string;
    expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: true, timeout: 5000 })).status).toBe(200);
    const room = await eventually('the typing change', async () => {
      const response = await sync(bob, { since: token, timeout: 2000 });
      const r = response.rooms?.join?.[roomId] as Json | undefined;
      return ((r?.ephemeral?.events ?? []) as Json[]).some((e) => e.type === 'm.typing') ? r : undefined;
    });
    expect(room.unread_notifications).toEqual({ notification_count: 2, highlight_count: 1 });
    expect((await api(alice, 'PUT', `/rooms/${enc(roomId)}/typing/${enc(alice.userId)}`, { typing: false })).status).toBe(200);
  });

  it('a read receipt resets the counts, and the receipt wakes a waiting /sync with them', async () => {
    const before = await sync(bob);
    expect(before.rooms.join[roomId].unread_notifications.notification_count).toBe(2);
    const last = (before.rooms.join[roomId].timeline.events as Json[]).at(-1)!.event_id as string;
    const waiting = sync(bob, { since: before.next_batch as string, timeout: 10_000 });
    await new Promise((r) => setTimeout(r, 300));
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {})).status).toBe(200);
    const woke = await waiting;
    expect(woke.rooms.join[roomId].unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
    expect((await initialCounts(bob)).unread_notifications).toEqual({ notification_count: 0, highlight_count: 0 });
  });

  it('a private receipt and the user\'s own message also mark as read', async () => {
    const first = await send(alice, 'one more');
    await countsBecome(bob, { notification_count: 1, highlight_count: 0 });
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read.private/${enc(first)}`, {})).status).toBe(200);
    await countsBecome(bob, { notification_count: 0, highlight_count: 0 });
    await send(alice, 'and another');
    await countsBecome(bob, { notification_count: 1, highlight_count: 0 });
    // "When the user updates their read receipt (either by using the API or by sending an event)".
    await send(bob, 'I am here');
    await countsBecome(bob, { notification_count: 0, highlight_count: 0 });
  });

  it('threads are counted apart with unread_thread_notifications, and a threaded receipt clears its thread only', async () => {
    const threadFilter = { room: { timeline: { unread_thread_notifications: true } } };
    const root = await send(alice, 'thread root');
    const reply = await send(alice, 'in the thread', { 'm.relates_to': { rel_type: 'm.thread', event_id: root } });
    const room = await eventually('thread counts', async () => {
      const r = await initialCounts(bob, threadFilter);
      return r?.unread_thread_notifications?.[root]?.notification_count === 1 ? r : undefined;
    });
    expect(room.unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
    expect(room.unread_thread_notifications[root]).toEqual({ notification_count: 1, highlight_count: 0 });
    // Without opting in, both are in unread_notifications.
    expect((await initialCounts(bob)).unread_notifications).toEqual({ notification_count: 2, highlight_count: 0 });
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(reply)}`, { thread_id: root })).status).toBe(200);
    const after = await eventually('thread cleared', async () => {
      const r = await initialCounts(bob, threadFilter);
      return r && r.unread_thread_notifications?.[root] === undefined ? r : undefined;
    });
    expect(after.unread_notifications).toEqual({ notification_count: 1, highlight_count: 0 });
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(root)}`, {})).status).toBe(200);
    await countsBecome(bob, { notification_count: 0, highlight_count: 0 });
  });

  it('push rule CRUD through matrix-js-sdk, seen in /sync account_data and applied to counts', async () => {
    const rules = await bob.sdk.getPushRules();
    expect(rules!.global.override!.map((r) => r.rule_id)).toEqual(expect.arrayContaining(['.m.rule.master', '.m.rule.is_user_mention', '.m.rule.is_room_mention']));
    // The SDK adds rules of its own to what it fetched (PushProcessor.rewriteDefaultRules); the server's list, as served:
    const served = (await api(bob, 'GET', '/pushrules/')).json.global as Json;
    expect((served.underride as Json[]).map((r) => r.rule_id)).toEqual(['.m.rule.call', '.m.rule.encrypted_room_one_to_one', '.m.rule.room_one_to_one', '.m.rule.message', '.m.rule.encrypted']);
    expect(served.content).toEqual([]);

    const token = (await sync(bob)).next_batch as string;
    await bob.sdk.addPushRule('global', PushRuleKind.ContentSpecific, 'cake', { pattern: 'cake', actions: ['notify', { set_tweak: 'highlight' }] } as never);
    const withCake = await bob.sdk.getPushRules();
    expect(withCake!.global.content!.find((r) => r.rule_id === 'cake')).toMatchObject({ pattern: 'cake', enabled: true, default: false });
    // "When a user changes their push rules a m.push_rules event is sent to all clients in the account_data section".
    const pushRulesEvent = await eventually('m.push_rules in account_data', async () => {
      const response = await sync(bob, { since: token, timeout: 2000 });
      return ((response.account_data?.events ?? []) as Json[]).find((e) => e.type === 'm.push_rules');
    });
    expect((pushRulesEvent.content.global.content as Json[]).map((r) => r.rule_id)).toContain('cake');

    // A content rule with highlight applies to the next message.
    await send(alice, 'there is CAKE in the kitchen');
    await countsBecome(bob, { notification_count: 1, highlight_count: 1 });

    await bob.sdk.setPushRuleEnabled('global', PushRuleKind.ContentSpecific, 'cake', false);
    expect((await api(bob, 'GET', '/pushrules/global/content/cake/enabled')).json).toEqual({ enabled: false });
    await bob.sdk.setPushRuleActions('global', PushRuleKind.ContentSpecific, 'cake', [PushRuleActionName.Notify]);
    expect((await api(bob, 'GET', '/pushrules/global/content/cake/actions')).json).toEqual({ actions: ['notify'] });
    // Server-default rules can be switched off and given other actions, not deleted.
    await bob.sdk.setPushRuleEnabled('global', PushRuleKind.Override, '.m.rule.suppress_notices', false);
    expect((await api(bob, 'GET', '/pushrules/global/override/.m.rule.suppress_notices/enabled')).json).toEqual({ enabled: false });
    await bob.sdk.setPushRuleEnabled('global', PushRuleKind.Override, '.m.rule.suppress_notices', true);

    await bob.sdk.deletePushRule('global', PushRuleKind.ContentSpecific, 'cake');
    expect((await matrixError(bob.sdk.deletePushRule('global', PushRuleKind.ContentSpecific, 'cake'))).errcode).toBe('M_NOT_FOUND');
    expect((await api(bob, 'GET', '/pushrules/global/content/cake')).status).toBe(404);

    // A room rule with no actions silences the room ("Examples").
    const last = (await initialCounts(bob)).timeline.events.at(-1).event_id as string;
    await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {});
    await countsBecome(bob, { notification_count: 0, highlight_count: 0 });
    await bob.sdk.addPushRule('global', PushRuleKind.RoomSpecific, roomId, { actions: [] } as never);
    await send(alice, 'muted message');
    await send(alice, 'bob?', { 'm.mentions': { user_ids: [bob.userId] } });
    await new Promise((r) => setTimeout(r, 1500));
    // The mention rule is an override, above room rules: it still counts; the plain message does not.
    await countsBecome(bob, { notification_count: 1, highlight_count: 1 });
    await bob.sdk.deletePushRule('global', PushRuleKind.RoomSpecific, roomId);
  });

  it('before/after place user rules (raw PUT with query parameters)', async () => {
    expect((await api(bob, 'PUT', '/pushrules/global/override/first', { actions: [], conditions: [{ kind: 'event_match', key: 'content.body', pattern: 'zzz' }] })).status).toBe(200);
    expect((await api(bob, 'PUT', '/pushrules/global/override/third?after=first', { actions: [] })).status).toBe(200);
    expect((await api(bob, 'PUT', '/pushrules/global/override/second?before=third', { actions: ['notify'] })).status).toBe(200);
    const order = ((await api(bob, 'GET', '/pushrules/')).json.global.override as Json[]).map((r) => r.rule_id);
    expect(order.slice(0, 4)).toEqual(['.m.rule.master', 'first', 'second', 'third']);
    // GET /pushrules/global/ answers the ruleset itself (push_ruleset.yaml), not wrapped in `global`.
    const globalOnly = (await api(bob, 'GET', '/pushrules/global/')).json;
    expect((globalOnly.override as Json[]).map((r) => r.rule_id).slice(0, 4)).toEqual(['.m.rule.master', 'first', 'second', 'third']);
    for (const id of ['first', 'second', 'third']) expect((await api(bob, 'DELETE', `/pushrules/global/override/${id}`)).status).toBe(200);
  });

  it('refuses bad push rule requests with the right errcode', async () => {
    const put = (path: string, body: unknown) => api(bob, 'PUT', `/pushrules/global/${path}`, body);
    expect((await put('override/.mine', { actions: [] })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await put(`override/${enc('a\\b')}`, { actions: [] })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await put('room/not-a-room', { actions: [] })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await put('sideways/x', { actions: [] })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await put('override/x', {})).json.errcode).toBe('M_MISSING_PARAM');
    expect((await put('override/x', { actions: ['explode'] })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await put('content/x', { actions: ['notify'] })).json.errcode).toBe('M_MISSING_PARAM');
    expect((await put('content/x', { actions: ['notify'], pattern: 7 })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await put('override/x', { actions: [], conditions: [{ kind: 'room_member_count', is: 'lots' }] })).json.errcode).toBe('M_INVALID_PARAM');
    const anchored = await put('override/x?before=nope', { actions: [] });
    expect(anchored).toEqual({ status: 400, json: expect.objectContaining({ errcode: 'M_UNKNOWN' }) });
    expect((await put('override/x?after=.m.rule.master', { actions: [] })).status).toBe(400);
    expect((await put('override/x', '[1,2]')).json.errcode).toBe('M_NOT_JSON');
    expect((await api(bob, 'GET', '/pushrules/global/override/nope')).json.errcode).toBe('M_NOT_FOUND');
    expect((await api(bob, 'PUT', '/pushrules/global/override/nope/enabled', { enabled: true })).json.errcode).toBe('M_NOT_FOUND');
    expect((await api(bob, 'PUT', '/pushrules/global/override/.m.rule.master/enabled', { enabled: 'yes' })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await api(bob, 'PUT', '/pushrules/global/override/.m.rule.master/actions', { actions: 5 })).json.errcode).toBe('M_INVALID_PARAM');
    const deleteDefault = await api(bob, 'DELETE', '/pushrules/global/override/.m.rule.master');
    expect(deleteDefault.status).toBe(400);
    expect((await api(null, 'GET', '/pushrules/')).json.errcode).toBe('M_MISSING_TOKEN');
  });

  it('an HTTP pusher set through setPusher receives the notification, and rejected pushkeys are dropped', async () => {
    const pusher = {
      kind: 'http',
      app_id: 'org.example.atrium.test',
      pushkey: 'pushkey-one',
      app_display_name: 'Atrium test',
      device_display_name: 'bob phone',
      lang: 'en',
      data: { url: gateway.url, custom: 'kept' },
    };
    await bob.sdk.setPusher(pusher as never);
    const listed = (await bob.sdk.getPushers()).pushers;
    expect(listed).toEqual([expect.objectContaining({ pushkey: 'pushkey-one', kind: 'http', app_id: pusher.app_id, lang: 'en', data: pusher.data })]);

    const eventId = await send(alice, 'ping for the pusher', { 'm.mentions': { user_ids: [bob.userId] } });
    const body = await eventually('the push at the gateway', () => gateway.received.find((b) => b.notification?.event_id === eventId));
    const n = body.notification as Json;
    expect(n).toMatchObject({ event_id: eventId, room_id: roomId, type: 'm.room.message', sender: alice.userId, prio: 'high', content: { body: 'ping for the pusher' } });
    expect(n.counts.unread).toBeGreaterThanOrEqual(1);
    expect(n.devices).toEqual([
      expect.objectContaining({ app_id: pusher.app_id, pushkey: 'pushkey-one', data: { custom: 'kept' }, tweaks: { sound: 'default', highlight: true } }),
    ]);

    // Reading brings the badge down: a counts-only request, no event ("update the number of unread notifications").
    expect((await api(bob, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(eventId)}`, {})).status).toBe(200);
    const badge = await eventually('the badge update', () =>
      gateway.received.find((b) => b.notification?.event_id === undefined && b.notification?.counts?.unread === 0 && b.notification.devices[0].pushkey === 'pushkey-one'),
    );
    expect(badge.notification).toEqual({ prio: 'low', counts: { unread: 0 }, devices: [expect.objectContaining({ pushkey: 'pushkey-one', data: { custom: 'kept' } })] });

    // A second pusher whose gateway answers it as rejected is removed ("Homeservers must cease sending notification requests for these pushkeys").
    gateway.rejectKeys.add('pushkey-two');
    await bob.sdk.setPusher({ ...pusher, pushkey: 'pushkey-two', data: { url: gateway.url, format: 'event_id_only' } } as never);
    expect((await bob.sdk.getPushers()).pushers).toHaveLength(2);
    const second = await send(alice, 'second ping');
    const idOnly = await eventually('the event_id_only push', () =>
      gateway.received.find((b) => b.notification?.event_id === second && b.notification.devices[0].pushkey === 'pushkey-two'),
    );
    expect(idOnly.notification.content).toBeUndefined();
    expect(idOnly.notification.sender).toBeUndefined();
    await eventually('the rejected pusher gone', async () => {
      const keys = (await bob.sdk.getPushers()).pushers.map((p) => p.pushkey);
      return keys.length === 1 && keys[0] === 'pushkey-one' ? true : undefined;
    });

    // kind null deletes.
    await bob.sdk.removePusher('pushkey-one', pusher.app_id);
    expect((await bob.sdk.getPushers()).pushers).toEqual([]);
  });

  it('an invite reaches the invitee\'s pusher (.m.rule.invite_for_me) with user_is_target', async () => {
    const dave = await newUser('dave');
    await dave.sdk.setPusher({
      kind: 'http',
      app_id: 'org.example.atrium.test',
      pushkey: 'dave-key',
      app_display_name: 'Atrium test',
      device_display_name: 'dave phone',
      lang: 'en',
      data: { url: gateway.url },
    } as never);
    const created = await api(alice, 'POST', '/createRoom', { preset: 'private_chat', name: 'Invite room' });
    expect((await api(alice, 'POST', `/rooms/${enc(created.json.room_id as string)}/invite`, { user_id: dave.userId })).status).toBe(200);
    const body = await eventually('the invite push', () =>
      gateway.received.find((b) => b.notification?.devices?.[0]?.pushkey === 'dave-key' && b.notification.type === 'm.room.member'),
    );
    expect(body.notification).toMatchObject({ room_id: created.json.room_id, sender: alice.userId, user_is_target: true, room_name: 'Invite room', content: { membership: 'invite' } });
    expect(body.notification.devices[0].tweaks).toEqual({ sound: 'default' });
    await dave.sdk.removePusher('dave-key', 'org.example.atrium.test');
  });

  it('refuses bad pushers with M_MISSING_PARAM / M_INVALID_PARAM', async () => {
    const good = { kind: 'http', app_id: 'a.b', pushkey: 'k', app_display_name: 'A', device_display_name: 'D', lang: 'en', data: { url: gateway.url } };
    const set = (body: unknown) => api(bob, 'POST', '/pushers/set', body);
    const without = (key: string): Json => Object.fromEntries(Object.entries(good).filter(([k]) => k !== key));
    expect((await set(without('kind'))).json.errcode).toBe('M_MISSING_PARAM');
    expect((await set(without('pushkey'))).json.errcode).toBe('M_MISSING_PARAM');
    expect((await set(without('lang'))).json.errcode).toBe('M_MISSING_PARAM');
    expect((await set(without('data'))).json.errcode).toBe('M_MISSING_PARAM');
    expect((await set({ ...good, data: {} })).json.errcode).toBe('M_MISSING_PARAM');
    expect((await set({ ...good, kind: 'sms' })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await set({ ...good, data: { url: 'ftp://example.org/_matrix/push/v1/notify' } })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await set({ ...good, data: { url: 'https://example.org/notify' } })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await set({ ...good, data: { url: 'not a url' } })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await set({ ...good, data: { url: gateway.url, format: 'full' } })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await set({ ...good, app_id: 'x'.repeat(65) })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await set({ ...good, append: 'yes' })).json.errcode).toBe('M_INVALID_PARAM');
    expect((await api(bob, 'GET', '/pushers')).json).toEqual({ pushers: [] });
  });

  it('GET /notifications lists notified events newest first, with read flags, only=highlight and paging', async () => {
    const all = await api(bob, 'GET', '/notifications?limit=100');
    expect(all.status).toBe(200);
    const list = all.json.notifications as Json[];
    expect(list.length).toBeGreaterThanOrEqual(5);
    for (const n of list) {
      expect(n).toEqual(expect.objectContaining({ room_id: roomId, read: expect.any(Boolean), ts: expect.any(Number), actions: expect.any(Array) }));
      expect(n.event.sender).toBe(alice.userId);
    }
    const streams = list.map((n) => n.event.origin_server_ts as number);
    expect([...streams].sort((a, b) => b - a)).toEqual(streams);
    const highlights = (await api(bob, 'GET', '/notifications?only=highlight&limit=100')).json.notifications as Json[];
    expect(highlights.length).toBeGreaterThanOrEqual(2);
    expect(highlights.every((n) => (n.actions as Json[]).some((a) => a.set_tweak === 'highlight'))).toBe(true);
    const page1 = await api(bob, 'GET', '/notifications?limit=2');
    expect(page1.json.notifications).toHaveLength(2);
    expect(typeof page1.json.next_token).toBe('string');
    const page2 = await api(bob, 'GET', `/notifications?limit=2&from=${enc(page1.json.next_token as string)}`);
    expect(page2.json.notifications[0].event.event_id).toBe(list[2].event.event_id);
    // The earliest were read (receipts above); the SDK's call works too.
    expect(list.at(-1)!.read).toBe(true);
    const viaSdk = await bob.sdk.http.authedRequest<Json>('GET' as never, '/notifications', { limit: '1' });
    expect(viaSdk.notifications).toHaveLength(1);
    expect((await api(bob, 'GET', '/notifications?limit=abc')).json.errcode).toBe('M_INVALID_PARAM');
    expect((await api(bob, 'GET', '/notifications?from=x')).json.errcode).toBe('M_INVALID_PARAM');
  });

  it('@room from a sender with the room notification level highlights; from one without, it only notifies', async () => {
    // Both readers start from nothing unread.
    for (const user of [bob, carol]) {
      const last = ((await initialCounts(user)).timeline.events as Json[]).at(-1)!.event_id as string;
      expect((await api(user, 'POST', `/rooms/${enc(roomId)}/receipt/m.read/${enc(last)}`, {})).status).toBe(200);
      await countsBecome(user, { notification_count: 0, highlight_count: 0 });
    }
    // alice created the room (power 100); carol has the default 0 against notifications.room (50).
    await send(alice, '@room lunch', { 'm.mentions': { room: true } });
    await countsBecome(carol, { notification_count: 1, highlight_count: 1 });
    await send(carol, '@room me too', { 'm.mentions': { room: true } });
    await countsBecome(bob, { notification_count: 2, highlight_count: 1 });
  });
});
