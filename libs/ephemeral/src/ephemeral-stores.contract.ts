/**
 * TypingStore and ReceiptStore contract: what /sync and the endpoints rely
 * on, run against every storage adapter (SQLite and FerretDB), like the
 * RoomStore contract in libs/rooms. Real storage and the real StreamAllocator.
 */
import { StreamAllocator } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { ReceiptStore, receiptContent } from './receipt-store';
import type { SyncWake } from './streams';
import { MAX_TYPING_TIMEOUT_MS, TypingStore } from './typing-store';

export function describeEphemeralStoresContract(adapter: string, open: () => Promise<DocumentStore>): void {
  describe(`ephemeral stores contract: ${adapter}`, () => {
    let store: DocumentStore;
    let typing: TypingStore;
    let receipts: ReceiptStore;
    let now = 1_000_000;
    const wakes: SyncWake[] = [];
    let n = 0;
    const room = (): string => `!e${++n}_${Date.now().toString(36)}:test`;

    beforeAll(async () => {
      store = await open();
      const positions = await StreamAllocator.open(store, () => now);
      const wake = async (w: SyncWake): Promise<void> => {
        wakes.push(w);
      };
      typing = await TypingStore.open(store, positions, wake, () => now);
      receipts = await ReceiptStore.open(store, positions, wake, () => now);
    });
    afterAll(async () => {
      await store?.close();
    });
    beforeEach(() => {
      wakes.length = 0;
    });

    describe('typing', () => {
      it('a start takes a position, wakes the room, and shows the user until the timeout', async () => {
        const r = room();
        const before = await typing.safePosition();
        const p = await typing.setTyping(r, '@a:test', true, 5_000);
        expect(p).toBeGreaterThan(before);
        expect(await typing.safePosition()).toBe(p);
        expect(wakes).toEqual([{ stream: 'typing', position: p, room_id: r }]);
        expect(await typing.typingIn([r])).toEqual(new Map([[r, ['@a:test']]]));
        expect(await typing.changedRooms([r], before, p as number)).toEqual(new Set([r]));
        expect(await typing.changedRooms([r], p as number, p as number)).toEqual(new Set());
        now += 5_000;
        // Past the timeout the user is left out even before the stop is written.
        expect(await typing.typingIn([r])).toEqual(new Map());
      });

      it('a renewal while typing moves the deadline only: no position, no wake-up', async () => {
        const r = room();
        const p = await typing.setTyping(r, '@a:test', true, 1_000);
        wakes.length = 0;
        now += 900;
        expect(await typing.setTyping(r, '@a:test', true, 1_000)).toBeNull();
        expect(wakes).toEqual([]);
        now += 900;
        expect(await typing.typingIn([r])).toEqual(new Map([[r, ['@a:test']]]));
        expect(await typing.changedRooms([r], p as number, await typing.safePosition())).toEqual(new Set());
      });

      it('a stop takes a position and empties the list; stopping again changes nothing', async () => {
        const r = room();
        const start = (await typing.setTyping(r, '@a:test', true, 30_000)) as number;
        await typing.setTyping(r, '@b:test', true, 30_000);
        const stop = await typing.setTyping(r, '@a:test', false);
        expect(stop).toBeGreaterThan(start);
        expect(await typing.typingIn([r])).toEqual(new Map([[r, ['@b:test']]]));
        expect(await typing.setTyping(r, '@a:test', false)).toBeNull();
        expect(await typing.setTyping(room(), '@never:test', false)).toBeNull();
      });

      it('expire() writes the stop of timed-out users once, with a new position and a wake-up', async () => {
        const r = room();
        await typing.setTyping(r, '@a:test', true, 1_000);
        const before = await typing.safePosition();
        now += 1_001;
        wakes.length = 0;
        expect(await typing.expire()).toBeGreaterThanOrEqual(1);
        expect(wakes.some((w) => w.room_id === r)).toBe(true);
        const after = await typing.safePosition();
        expect(await typing.changedRooms([r], before, after)).toEqual(new Set([r]));
        expect(await typing.expire()).toBe(0);
        // A new start after the stop is a change again.
        expect(await typing.setTyping(r, '@a:test', true, 1_000)).toBeGreaterThan(after);
      });

      it('two replicas expiring at once write each stop once', async () => {
        const r = room();
        const replica = await TypingStore.open(store, await StreamAllocator.open(store, () => now), async (w) => void wakes.push(w), () => now);
        await typing.setTyping(r, '@a:test', true, 1_000);
        await typing.setTyping(r, '@b:test', true, 1_000);
        now += 1_001;
        wakes.length = 0;
        const [mine, theirs] = await Promise.all([typing.expire(), replica.expire()]);
        const stops = wakes.filter((w) => w.room_id === r);
        expect(stops).toHaveLength(2);
        expect(mine + theirs).toBeGreaterThanOrEqual(2);
        expect(await typing.typingIn([r])).toEqual(new Map());
      });

      it('active() lists the typing states not past their timeout', async () => {
        const r = room();
        await typing.setTyping(r, '@a:test', true, 1_000);
        await typing.setTyping(r, '@b:test', true, 5_000);
        expect((await typing.active()).filter((t) => t.room_id === r).map((t) => t.user_id).sort()).toEqual(['@a:test', '@b:test']);
        now += 1_000;
        expect((await typing.active()).filter((t) => t.room_id === r).map((t) => t.user_id)).toEqual(['@b:test']);
      });

      it('caps the timeout', async () => {
        const r = room();
        await typing.setTyping(r, '@a:test', true, 10 * MAX_TYPING_TIMEOUT_MS);
        now += MAX_TYPING_TIMEOUT_MS;
        expect(await typing.typingIn([r])).toEqual(new Map());
      });

      it('only reports the rooms asked for', async () => {
        const r1 = room();
        const r2 = room();
        const before = await typing.safePosition();
        await typing.setTyping(r1, '@a:test', true, 1_000);
        await typing.setTyping(r2, '@a:test', true, 1_000);
        const to = await typing.safePosition();
        expect(await typing.changedRooms([r2], before, to)).toEqual(new Set([r2]));
        expect(await typing.typingIn([r1])).toEqual(new Map([[r1, ['@a:test']]]));
        expect(await typing.typingIn([])).toEqual(new Map());
      });

      it('concurrent starts of many users all land, each with its own position', async () => {
        const r = room();
        const users = Array.from({ length: 8 }, (_, i) => `@u${i}:test`);
        const positions = await Promise.all(users.map((u) => typing.setTyping(r, u, true, 10_000)));
        expect(new Set(positions).size).toBe(users.length);
        expect(new Set((await typing.typingIn([r])).get(r))).toEqual(new Set(users));
      });
    });

    describe('receipts', () => {
      it('stores one receipt per (user, type, thread), moves forward only, and wakes the room', async () => {
        const r = room();
        const before = await receipts.safePosition();
        const p1 = await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', eventId: '$e5', eventStream: 5 });
        expect(p1).toBeGreaterThan(before);
        expect(wakes).toEqual([{ stream: 'receipts', position: p1, room_id: r }]);
        // An older event does not move the marker back; the same event is not written again.
        expect(await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', eventId: '$e3', eventStream: 3 })).toBeNull();
        expect(await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', eventId: '$e5', eventStream: 5 })).toBeNull();
        now += 10;
        const p2 = await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', eventId: '$e7', eventStream: 7 });
        expect(p2).toBeGreaterThan(p1 as number);
        expect((await receipts.get(r, '@a:test', 'm.read'))?.event_id).toBe('$e7');
        // Initial: the latest receipt only. Incremental after p1: the change.
        const all = await receipts.changes([r], '@b:test', 0, p2 as number);
        expect(all.get(r)?.map((x) => x.event_id)).toEqual(['$e7']);
        expect((await receipts.changes([r], '@b:test', p1 as number, p2 as number)).get(r)?.length).toBe(1);
        expect((await receipts.changes([r], '@b:test', p2 as number, p2 as number)).size).toBe(0);
      });

      it('threaded receipts are separate from unthreaded ones and carry thread_id', async () => {
        const r = room();
        await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', eventId: '$u', eventStream: 10 });
        await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', threadId: 'main', eventId: '$m', eventStream: 9 });
        await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', threadId: '$root', eventId: '$t', eventStream: 8 });
        const changes = await receipts.changes([r], '@a:test', 0, await receipts.safePosition());
        const content = receiptContent(changes.get(r) ?? []);
        expect(content).toEqual({
          $u: { 'm.read': { '@a:test': { ts: now } } },
          $m: { 'm.read': { '@a:test': { ts: now, thread_id: 'main' } } },
          $t: { 'm.read': { '@a:test': { ts: now, thread_id: '$root' } } },
        });
      });

      it('private receipts are seen by their owner only and wake only the owner', async () => {
        const r = room();
        const p = await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read.private', eventId: '$p', eventStream: 4 });
        expect(wakes).toEqual([{ stream: 'receipts', position: p, user_ids: ['@a:test'] }]);
        const to = await receipts.safePosition();
        expect((await receipts.changes([r], '@b:test', 0, to)).size).toBe(0);
        expect(receiptContent((await receipts.changes([r], '@a:test', 0, to)).get(r) ?? [])).toEqual({ $p: { 'm.read.private': { '@a:test': { ts: now } } } });
      });

      it('batches several users and types on one event', async () => {
        const r = room();
        await receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', eventId: '$x', eventStream: 3 });
        await receipts.put({ roomId: r, userId: '@b:test', type: 'm.read', eventId: '$x', eventStream: 3 });
        await receipts.put({ roomId: r, userId: '@b:test', type: 'm.read.private', eventId: '$x', eventStream: 3 });
        const content = receiptContent((await receipts.changes([r], '@b:test', 0, await receipts.safePosition())).get(r) ?? []);
        expect(Object.keys(content)).toEqual(['$x']);
        expect(Object.keys(content.$x['m.read']).sort()).toEqual(['@a:test', '@b:test']);
        expect(Object.keys(content.$x['m.read.private'])).toEqual(['@b:test']);
      });

      it('concurrent receipts of one user keep the latest event', async () => {
        const r = room();
        const streams = [3, 9, 5, 7, 1, 8];
        await Promise.all(streams.map((s) => receipts.put({ roomId: r, userId: '@a:test', type: 'm.read', eventId: `$s${s}`, eventStream: s })));
        expect((await receipts.get(r, '@a:test', 'm.read'))?.event_id).toBe('$s9');
      });
    });
  });
}
