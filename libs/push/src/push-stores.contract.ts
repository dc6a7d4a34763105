import type { Bus } from '@atrium/bus';
import type { RoomEvent } from '@atrium/matrix';
import type { DocumentStore } from '@atrium/storage';
import { PushStores } from './push-stores';

/**
 * libs/push over a real document store and the real rooms, receipts and
 * account data stores (nothing of ours is mocked; the bus is only used to
 * send sync.wake, which nobody listens to here). Run on SQLite and on the
 * MongoDB adapter against FerretDB.
 */
export function describePushStoresContract(adapter: string, open: () => Promise<DocumentStore>): void {
  describe(`libs/push on ${adapter}`, () => {
    const silentBus = { notify: () => Promise.resolve() } as unknown as Bus;
    const ROOM = '!room:test';
    const ALICE = '@alice:test';
    const BOB = '@bob:test';
    const CAROL = '@carol:test';

    let store: DocumentStore;
    let push: PushStores;
    let stream = 0;
    let counter = 0;

    async function put(sender: string, type: string, content: Record<string, unknown>, stateKey?: string): Promise<{ id: string; stream: number; event: RoomEvent }> {
      stream += 1;
      counter += 1;
      const event = {
        event_id: `$e${counter}`,
        room_id: ROOM,
        type,
        sender,
        content,
        origin_server_ts: 1000 + counter,
        depth: counter,
        prev_events: [],
        auth_events: [],
        hashes: { sha256: 'x' },
        signatures: {},
        ...(stateKey !== undefined ? { state_key: stateKey } : {}),
      } as unknown as RoomEvent;
      await push.rooms.insertEvent({ event, stream });
      if (stateKey !== undefined) await push.rooms.setCurrentState(event, stream);
      if (type === 'm.room.member') await push.rooms.setMembership(event, stream);
      return { id: event.event_id, stream, event };
    }

    const message = (sender: string, body: string, extra: Record<string, unknown> = {}) => put(sender, 'm.room.message', { msgtype: 'm.text', body, ...extra });

    /** Does what the push gateway does for one event: rows for each local recipient rules notify. */
    async function process(e: { id: string; stream: number; event: RoomEvent }): Promise<void> {
      const room = await push.evaluator.roomContext(ROOM);
      const threadId = await push.evaluator.threadOf(e.event);
      await push.notifications.markSent(e.event.sender, ROOM, threadId, e.stream);
      const record = (await push.rooms.getEvents([e.id]))[0];
      for (const userId of push.evaluator.recipients(record, e.event, room, () => true)) {
        const result = await push.evaluator.evaluate(userId, e.event, room);
        if (result.notify) {
          await push.notifications.record({ userId, roomId: ROOM, eventId: e.id, threadId, eventStream: e.stream, highlight: result.highlight, actions: result.actions });
        }
      }
    }

    beforeAll(async () => {
      store = await open();
      push = await PushStores.open(store, silentBus);
      await put(ALICE, 'm.room.create', { room_version: '10' }, '');
      for (const user of [ALICE, BOB, CAROL]) await put(user, 'm.room.member', { membership: 'join' }, user);
      await put(ALICE, 'm.room.power_levels', { users: { [ALICE]: 100 } }, '');
    });
    afterAll(() => store?.close());

    describe('unread counts', () => {
      it('counts events the gateway has not reached, then the same from its rows (no double count), and a replay adds nothing', async () => {
        const a = await message(ALICE, 'hello');
        const b = await message(ALICE, 'hey bob', { 'm.mentions': { user_ids: [BOB] } });
        const inline = await push.counter.roomCounts(BOB, ROOM, stream, false, 0);
        expect(inline.total).toEqual({ notification_count: 2, highlight_count: 1 });
        await process(a);
        // Cursor still behind b, a recorded: a from its row, b inline.
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false, a.stream)).total).toEqual({ notification_count: 2, highlight_count: 1 });
        // Cursor still behind a though a is recorded: the recorded one is not counted twice.
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false, 0)).total).toEqual({ notification_count: 2, highlight_count: 1 });
        await process(b);
        await process(b);
        expect(await push.notifications.advanceCursor(0, stream)).toBe(true);
        expect(await push.notifications.advanceCursor(0, stream)).toBe(false);
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false)).total).toEqual({ notification_count: 2, highlight_count: 1 });
        expect((await push.counter.roomCounts(ALICE, ROOM, stream, false)).total).toEqual({ notification_count: 0, highlight_count: 0 });
        // Counts are as of the response's position.
        expect((await push.counter.roomCounts(BOB, ROOM, a.stream, false)).total).toEqual({ notification_count: 1, highlight_count: 0 });
      });

      it('the more advanced of m.read and m.read.private resets them, and so does a message of the user', async () => {
        const last = (await push.rooms.latestEvent(ROOM))!;
        expect(await push.receipts.put({ roomId: ROOM, userId: BOB, type: 'm.read.private', eventId: last._id, eventStream: last.stream })).not.toBeNull();
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false)).total).toEqual({ notification_count: 0, highlight_count: 0 });
        const c = await message(ALICE, 'again');
        await process(c);
        await push.notifications.advanceCursor(c.stream - 1, c.stream);
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false)).total.notification_count).toBe(1);
        const own = await message(BOB, 'read it');
        // Not processed yet: the inline pass sees Bob's own message.
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false)).total.notification_count).toBe(0);
        await process(own);
        await push.notifications.advanceCursor(own.stream - 1, own.stream);
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false)).total.notification_count).toBe(0);
      });

      it('partitions threads; a threaded receipt clears its thread only; an unthreaded one clears all', async () => {
        const root = await message(ALICE, 'root');
        const reply = await message(ALICE, 'reply', { 'm.relates_to': { rel_type: 'm.thread', event_id: root.id } });
        for (const e of [root, reply]) await process(e);
        await push.notifications.advanceCursor(root.stream - 1, stream);
        const split = await push.counter.roomCounts(BOB, ROOM, stream, true);
        expect(split.total).toEqual({ notification_count: 1, highlight_count: 0 });
        expect(split.threads).toEqual({ [root.id]: { notification_count: 1, highlight_count: 0 } });
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false)).total.notification_count).toBe(2);
        await push.receipts.put({ roomId: ROOM, userId: BOB, type: 'm.read', threadId: root.id, eventId: reply.id, eventStream: reply.stream });
        const after = await push.counter.roomCounts(BOB, ROOM, stream, true);
        expect(after.threads).toEqual({});
        expect(after.total.notification_count).toBe(1);
        expect(await push.counter.readUpTo(BOB, ROOM, root.id)).toBe(reply.stream);
        await push.receipts.put({ roomId: ROOM, userId: BOB, type: 'm.read', eventId: root.id, eventStream: root.stream });
        expect((await push.counter.roomCounts(BOB, ROOM, stream, false)).total.notification_count).toBe(0);
        expect(await push.counter.unreadAcrossRooms(BOB, stream)).toBe(0);
      });

      it('applies the user\'s rules: a room rule with no actions mutes, and the rules are the m.push_rules account data', async () => {
        const { putRule } = await import('@atrium/matrix');
        await push.rules.update(CAROL, (rules) => putRule(rules, 'room', ROOM, { actions: [] }));
        const e = await message(ALICE, 'muted for carol');
        await process(e);
        expect(await push.notifications.get(CAROL, e.id)).toBeNull();
        expect(await push.notifications.get(BOB, e.id)).not.toBeNull();
        const stored = await push.rules.get(CAROL);
        expect(stored.room.map((r) => r.rule_id)).toEqual([ROOM]);
        const listed = await push.notifications.list(BOB, Number.MAX_SAFE_INTEGER, 2, false);
        expect(listed.map((r) => r.event_id)).toEqual([e.id, listed[1].event_id]);
        expect((await push.notifications.list(BOB, Number.MAX_SAFE_INTEGER, 10, true)).every((r) => r.highlight)).toBe(true);
      });

      it('the gateway\'s rules cache keeps a ruleset while account data stands still and drops it after any change', async () => {
        const { putRule } = await import('@atrium/matrix');
        const cache = push.cachedRules();
        await cache.refresh();
        const first = cache.get(BOB);
        expect((await first).room.map((r) => r.rule_id)).not.toContain('!cached:test');
        await cache.refresh();
        // Nothing changed: the same read is served again.
        expect(cache.get(BOB)).toBe(first);
        await push.rules.update(BOB, (rules) => putRule(rules, 'room', '!cached:test', { actions: [] }));
        // Until the next refresh (a batch boundary) the old ruleset stands; after it the new one is read.
        expect(cache.get(BOB)).toBe(first);
        await cache.refresh();
        expect((await cache.get(BOB)).room.map((r) => r.rule_id)).toContain('!cached:test');
        // Another user's account data also empties it (no per-user bookkeeping).
        const second = cache.get(BOB);
        await push.rules.update(CAROL, (rules) => putRule(rules, 'room', '!other:test', { actions: [] }));
        await cache.refresh();
        expect(cache.get(BOB)).not.toBe(second);
      });

      it('concurrent rule edits of one user lose nothing (compare-and-set on the account data)', async () => {
        const { putRule } = await import('@atrium/matrix');
        const ids = Array.from({ length: 8 }, (_, i) => `rule${i}`);
        await Promise.all(ids.map((id) => push.rules.update(ALICE, (rules) => putRule(rules, 'override', id, { actions: [] }))));
        const stored = (await push.rules.get(ALICE)).override.map((r) => r.rule_id);
        expect(stored.filter((id) => id.startsWith('rule')).sort()).toEqual(ids);
        // A refused edit writes nothing.
        await expect(push.rules.update(ALICE, (rules) => putRule(rules, 'override', '.bad', { actions: [] }))).rejects.toThrow(/reserved/);
      });

      it('@room highlights only when the sender has the room notification level', async () => {
        const fromAlice = await message(ALICE, '@room hi', { 'm.mentions': { room: true } });
        const fromCarol = await message(CAROL, '@room hi', { 'm.mentions': { room: true } });
        const room = await push.evaluator.roomContext(ROOM);
        expect((await push.evaluator.evaluate(BOB, fromAlice.event, room)).highlight).toBe(true);
        expect((await push.evaluator.evaluate(BOB, fromCarol.event, room)).highlight).toBe(false);
      });
    });

    describe('batched writes of the gateway', () => {
      const row = (userId: string, eventId: string, eventStream: number) => ({ userId, roomId: '!batch:test', eventId, threadId: 'main', eventStream, highlight: false, actions: ['notify' as const] });

      it('moves many latest-row marks at once, only ever forward', async () => {
        await push.notifications.moveLatestMany([
          { userId: BOB, roomId: '!b1:test', eventStream: 50 },
          { userId: CAROL, roomId: '!b1:test', eventStream: 50 },
          { userId: BOB, roomId: '!b2:test', eventStream: 40 },
        ]);
        expect(await push.notifications.latestInRooms(BOB, ['!b1:test', '!b2:test', '!none:test'])).toEqual(new Map([['!b1:test', 50], ['!b2:test', 40]]));
        // Lower positions (a replay) change nothing; a higher one moves only its own mark.
        await push.notifications.moveLatestMany([
          { userId: BOB, roomId: '!b1:test', eventStream: 60 },
          { userId: CAROL, roomId: '!b1:test', eventStream: 30 },
          { userId: BOB, roomId: '!b2:test', eventStream: 30 },
        ]);
        expect(await push.notifications.latestInRooms(BOB, ['!b1:test', '!b2:test'])).toEqual(new Map([['!b1:test', 60], ['!b2:test', 40]]));
        expect(await push.notifications.latestInRooms(CAROL, ['!b1:test'])).toEqual(new Map([['!b1:test', 50]]));
      });

      it('inserts a batch of rows and tells the new ones from replays', async () => {
        const first = await push.notifications.insertRows([row(BOB, '$bx1', 70), row(CAROL, '$bx1', 70), row(BOB, '$bx2', 71)]);
        expect([...first].sort()).toEqual([`${BOB}\n$bx1`, `${BOB}\n$bx2`, `${CAROL}\n$bx1`].sort());
        await push.notifications.markPushed(BOB, '$bx1');
        const again = await push.notifications.insertRows([row(BOB, '$bx1', 70), row(CAROL, '$bx3', 72)]);
        expect([...again]).toEqual([`${CAROL}\n$bx3`]);
        // The replayed row kept its pushed mark.
        expect((await push.notifications.get(BOB, '$bx1'))?.pushed).toBe(true);
        expect((await push.notifications.getMany([{ userId: BOB, eventId: '$bx1' }, { userId: CAROL, eventId: '$bx3' }, { userId: CAROL, eventId: '$nope' }])).map((r) => r.event_id)).toEqual(['$bx1', '$bx3']);
      });
    });

    it('prunes rows older than a time', async () => {
      const before = (await push.notifications.list(BOB, Number.MAX_SAFE_INTEGER, 100, false)).length;
      expect(before).toBeGreaterThan(0);
      expect(await push.notifications.pruneBefore(0)).toBe(0);
      expect(await push.notifications.pruneBefore(Date.now() + 1000)).toBeGreaterThanOrEqual(before);
      expect(await push.notifications.list(BOB, Number.MAX_SAFE_INTEGER, 100, false)).toEqual([]);
    });

    describe('pushers', () => {
      const pusher = { kind: 'http', app_id: 'a.b', pushkey: 'k1', app_display_name: 'A', device_display_name: 'D', lang: 'en', data: { url: 'https://gw/_matrix/push/v1/notify' } };
      it('sets, lists, appends or takes over a pushkey, and deletes', async () => {
        await push.pushers.set(BOB, pusher, false);
        await push.pushers.set(CAROL, pusher, true);
        expect((await push.pushers.forUser(BOB)).map((p) => p.pushkey)).toEqual(['k1']);
        expect((await push.pushers.forUser(CAROL)).map((p) => p.pushkey)).toEqual(['k1']);
        // Without append, "remove any other pushers with the same App ID and pushkey for different users".
        await push.pushers.set(BOB, { ...pusher, lang: 'fr' }, false);
        expect(await push.pushers.forUser(CAROL)).toEqual([]);
        expect((await push.pushers.forUser(BOB))[0].lang).toBe('fr');
        expect(await push.pushers.delete(BOB, 'a.b', 'k1')).toBe(true);
        expect(await push.pushers.forUser(BOB)).toEqual([]);
      });
    });
  });
}
