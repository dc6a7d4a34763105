/**
 * RoomStore contract: the behaviour sync, /messages and the room server rely
 * on, run against every storage adapter (SQLite and FerretDB), like the
 * DocumentStore contract in libs/storage.
 */
import type { Doc, DocumentStore } from '@atrium/storage';
import type { JsonObject, RoomEvent } from '@atrium/matrix';
import { RoomStore, eventOf, unsignedOf, EVENTS_STREAM, LOG_PAGE_SIZE, NO_STREAM, logPageOf } from './room-store';
import { StreamAllocator, STREAM_GAP_GRACE_MS } from './stream-allocator';
import { toClientEvent } from './client-event';
import { canSeeEvent } from './history-visibility';

let counter = 0;

function ev(roomId: string, type: string, sender: string, content: JsonObject, stateKey?: string, depth = 1): RoomEvent {
  counter++;
  const e: RoomEvent = {
    event_id: `$e${counter}_${Math.random().toString(36).slice(2)}`,
    room_id: roomId,
    type,
    sender,
    content,
    origin_server_ts: 1_000 + counter,
    depth,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: 'x' },
    signatures: {},
  };
  if (stateKey !== undefined) e.state_key = stateKey;
  return e;
}

export function describeRoomStoreContract(adapter: string, open: () => Promise<DocumentStore>): void {
  describe(`RoomStore contract: ${adapter}`, () => {
    let store: DocumentStore;
    let rooms: RoomStore;
    let now = 5_000_000;
    let n = 0;
    const room = (): string => `!r${++n}_${Date.now().toString(36)}:test`;

    beforeAll(async () => {
      store = await open();
      rooms = await RoomStore.open(store, () => now);
    });
    afterAll(async () => {
      await store?.close();
    });

    /** Writes an event the way the room server does: position, event, state, membership, extremities. */
    async function write(e: RoomEvent, extra: { txnId?: string; deviceId?: string; unsigned?: JsonObject } = {}): Promise<number> {
      return rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
        await rooms.insertEvent({ event: e, stream, ...extra });
        if (e.state_key !== undefined) await rooms.setCurrentState(e, stream);
        if (e.type === 'm.room.member') await rooms.setMembership(e, stream);
        await rooms.updateExtremities(e, e.prev_events as string[]);
        return stream;
      });
    }

    it('creates a room once and keeps its version, creator and visibility', async () => {
      const id = room();
      expect(await rooms.createRoom({ roomId: id, version: '12', creator: '@a:test' })).toBe(true);
      expect(await rooms.createRoom({ roomId: id, version: '1', creator: '@b:test' })).toBe(false);
      expect(await rooms.getRoom(id)).toMatchObject({ _id: id, version: '12', creator: '@a:test', visibility: 'private' });
      expect(await rooms.setVisibility(id, 'public')).toBe(true);
      expect((await rooms.publicRooms()).map((r) => r._id)).toContain(id);
      expect(await rooms.getRoom('!missing:test')).toBeNull();
      expect((await rooms.getRoom(id))!.applied_stream).toBe(0);
      await rooms.markPending(id, 7);
      await rooms.markApplied(id, 7);
      expect(await rooms.getRoom(id)).toMatchObject({ pending_stream: 7, applied_stream: 7 });
    });

    it('stores events idempotently with increasing stream positions and returns them byte-exact', async () => {
      const id = room();
      const content: JsonObject = { body: 'hi', 'm.relates_to': { rel_type: 'm.thread', event_id: '$x' }, nested: [[1, 2], { 'a.b': null }] };
      const e = ev(id, 'm.room.message', '@a:test', content);
      const p1 = await write(e, { txnId: 't1', deviceId: 'D' });
      expect(await rooms.insertEvent({ event: e, stream: p1 + 100 })).toBe(false);
      const stored = await rooms.getEvent(e.event_id);
      expect(stored).toMatchObject({ room_id: id, type: 'm.room.message', state_key: null, sender: '@a:test', stream: p1, redacted: false });
      expect(eventOf(stored!)).toEqual(e);
      const p2 = await write(ev(id, 'm.room.message', '@a:test', { body: 'two' }));
      expect(p2).toBeGreaterThan(p1);
      expect(await rooms.getEvents([e.event_id, '$nope', e.event_id])).toHaveLength(2);
    });

    it('reads a room between two stream positions, newest first or oldest first, with a limit', async () => {
      const id = room();
      const other = room();
      const positions: number[] = [];
      for (let i = 0; i < 5; i++) {
        positions.push(await write(ev(id, 'm.room.message', '@a:test', { body: `m${i}` })));
        await write(ev(other, 'm.room.message', '@a:test', { body: `o${i}` }));
      }
      const to = await rooms.safeStreamPosition();
      const newest = await rooms.roomEvents(id, { from: positions[0], to, limit: 3 });
      expect(newest.map((r) => eventOf(r).content['body'])).toEqual(['m4', 'm3', 'm2']);
      const oldest = await rooms.roomEvents(id, { from: 0, to: positions[2], direction: 'forward' });
      expect(oldest.map((r) => eventOf(r).content['body'])).toEqual(['m0', 'm1', 'm2']);
      const both = await rooms.eventsOfRooms([id, other, '!none:test'], { from: positions[3], to, limit: 10 });
      expect([...both.keys()].sort()).toEqual([id, other].sort());
      expect(both.get(id)!.map((r) => eventOf(r).content['body'])).toEqual(['m4']);
      expect(await rooms.roomHasEventsBetween(id, positions[4], to)).toBe(false);
      expect(await rooms.roomHasEventsBetween(id, positions[3], to)).toBe(true);
      expect(await rooms.roomsWithEventsBetween(positions[4], to)).toEqual(new Set([other]));
      expect(await rooms.roomsWithEventsBetween(positions[3], to)).toEqual(new Set([id, other]));
      expect(await rooms.roomsWithEventsBetween(to, to)).toEqual(new Set());
      expect(await rooms.roomsWithEventsBetween(positions[0], to, 2)).toBeNull();
      expect(eventOf((await rooms.latestEvent(id))!).content['body']).toBe('m4');
      // By timestamp (ev() gives increasing origin_server_ts).
      const m2 = eventOf((await rooms.roomEvents(id, { from: positions[1], to: positions[2], direction: 'forward' }))[0]);
      expect((await rooms.eventAtTimestamp(id, m2.origin_server_ts, 'f'))!._id).toBe(m2.event_id);
      expect(eventOf((await rooms.eventAtTimestamp(id, m2.origin_server_ts - 1, 'b'))!).content['body']).toBe('m1');
      expect(eventOf((await rooms.eventAtTimestamp(id, m2.origin_server_ts + 1, 'f'))!).content['body']).toBe('m3');
      expect(await rooms.eventAtTimestamp(id, 0, 'b')).toBeNull();
      // Backfilled history (below 0) is found too; events outside the timeline (NO_STREAM) never are.
      const late = room();
      const history = { ...ev(late, 'm.room.message', '@a:test', { body: 'history' }), origin_server_ts: 5 };
      await rooms.insertEvent({ event: history, stream: -4 });
      await rooms.insertEvent({ event: { ...ev(late, 'm.room.message', '@a:test', { body: 'outlier' }), origin_server_ts: 6 }, stream: NO_STREAM });
      expect((await rooms.eventAtTimestamp(late, 10, 'b'))?._id).toBe(history.event_id);
      expect((await rooms.eventAtTimestamp(late, 0, 'f'))?._id).toBe(history.event_id);
      expect(await rooms.eventAtTimestamp(late, 6, 'f')).toBeNull();
      // The output log: both rooms, in stream order, from a cursor.
      const log = await rooms.allEventsBetween(positions[3], to, 10);
      expect(log.map((r) => eventOf(r).content['body'])).toEqual(['o3', 'm4', 'o4']);
      expect(await rooms.allEventsBetween(positions[3], to, 1)).toHaveLength(1);
    });

    it('keeps current state, state at a position and memberships per user', async () => {
      const id = room();
      const create = ev(id, 'm.room.create', '@a:test', { room_version: '12' }, '');
      await write(create);
      const join = ev(id, 'm.room.member', '@a:test', { membership: 'join' }, '@a:test');
      const joinPos = await write(join);
      const name1 = ev(id, 'm.room.name', '@a:test', { name: 'one' }, '');
      const namePos = await write(name1);
      const invite = ev(id, 'm.room.member', '@a:test', { membership: 'invite' }, '@b:test');
      const invitePos = await write(invite);
      const name2 = ev(id, 'm.room.name', '@a:test', { name: 'two' }, '');
      await write(name2, { unsigned: { prev_content: { name: 'one' }, replaces_state: name1.event_id } });

      const state = await rooms.currentState(id);
      expect(state.map((r) => r._id).sort()).toEqual([create.event_id, join.event_id, invite.event_id, name2.event_id].sort());
      expect((await rooms.currentStateEvent(id, 'm.room.name', ''))!._id).toBe(name2.event_id);
      expect(await rooms.currentStateEvent(id, 'm.room.topic', '')).toBeNull();
      expect((await rooms.currentState(id, 'm.room.member')).map((r) => r.state_key).sort()).toEqual(['@a:test', '@b:test']);

      const fast = await rooms.currentStateEventsFor(id, [['m.room.name', ''], ['m.room.member', '@b:test'], ['m.room.topic', '']]);
      expect([...fast.keys()].sort()).toEqual(['m.room.member\u0000@b:test', 'm.room.name\u0000']);
      expect(fast.get('m.room.name\u0000')).toEqual(name2);
      expect((await rooms.currentStateEventsFor(id, [])).size).toBe(0);

      const before = await rooms.stateAtPosition(id, namePos);
      expect(before.map((r) => r._id).sort()).toEqual([create.event_id, join.event_id, name1.event_id].sort());
      // What changed from namePos to now: the invite and the second name; from the start, the state then.
      const now = await rooms.safeStreamPosition();
      expect((await rooms.stateChangesBetween(id, namePos, now)).map((r) => r._id).sort()).toEqual([invite.event_id, name2.event_id].sort());
      expect((await rooms.stateChangesBetween(id, Number.MIN_SAFE_INTEGER, namePos)).map((r) => r._id).sort()).toEqual([create.event_id, join.event_id, name1.event_id].sort());
      expect(await rooms.stateChangesBetween(id, now, now)).toEqual([]);
      // Member events of some users at a position.
      expect((await rooms.memberEventsAt(id, ['@a:test', '@b:test', '@nobody:test'], namePos)).map((r) => r._id)).toEqual([join.event_id]);
      expect((await rooms.memberEventsAt(id, ['@a:test', '@b:test'], now)).map((r) => r._id).sort()).toEqual([join.event_id, invite.event_id].sort());
      expect(await rooms.memberEventsAt(id, [], now)).toEqual([]);

      expect(await rooms.getMembership(id, '@b:test')).toMatchObject({ membership: 'invite', stream: invitePos, event_id: invite.event_id, sender: '@a:test' });
      expect((await rooms.roomsOfUser('@a:test', ['join'])).map((m) => m.room_id)).toContain(id);
      const ofB = await rooms.roomsOfUser('@b:test');
      expect(ofB.find((m) => m.room_id === id)).toMatchObject({ membership: 'invite', stream: invitePos });
      expect((await rooms.membershipChanges('@a:test', joinPos - 1, joinPos)).map((m) => m.room_id)).toEqual([id]);
      expect(await rooms.membershipChanges('@a:test', joinPos, await rooms.safeStreamPosition())).toEqual([]);
      expect(await rooms.joinedUsers(id)).toEqual(['@a:test']);
      expect((await rooms.membersOfRoom(id)).map((m) => m.user_id)).toEqual(['@a:test', '@b:test']);

      const client = toClientEvent((await rooms.getEvent(name2.event_id))!, { now: name2.origin_server_ts + 5 });
      expect(client).toEqual({
        content: { name: 'two' },
        event_id: name2.event_id,
        origin_server_ts: name2.origin_server_ts,
        room_id: id,
        sender: '@a:test',
        state_key: '',
        type: 'm.room.name',
        unsigned: { age: 5, prev_content: { name: 'one' }, replaces_state: name1.event_id },
      });
    });

    it('forgets only rooms the user left, and a new membership un-forgets', async () => {
      const id = room();
      await write(ev(id, 'm.room.member', '@c:test', { membership: 'join' }, '@c:test'));
      expect(await rooms.forget(id, '@c:test')).toBe(false);
      await write(ev(id, 'm.room.member', '@c:test', { membership: 'leave' }, '@c:test'));
      expect(await rooms.forget(id, '@c:test')).toBe(true);
      expect((await rooms.getMembership(id, '@c:test'))!.forgotten).toBe(true);
      await write(ev(id, 'm.room.member', '@c:test', { membership: 'join' }, '@c:test'));
      expect((await rooms.getMembership(id, '@c:test'))!.forgotten).toBe(false);
    });

    it('tracks forward extremities: a new event replaces the events it references', async () => {
      const id = room();
      const a = ev(id, 'm.room.create', '@a:test', {}, '', 1);
      await write(a);
      const b = { ...ev(id, 'm.room.message', '@a:test', {}, undefined, 2), prev_events: [a.event_id] };
      const c = { ...ev(id, 'm.room.message', '@a:test', {}, undefined, 2), prev_events: [a.event_id] };
      await write(b);
      await write(c);
      expect((await rooms.forwardExtremities(id)).map((x) => x.event_id).sort()).toEqual([b.event_id, c.event_id].sort());
      const d = { ...ev(id, 'm.room.message', '@a:test', {}, undefined, 3), prev_events: [b.event_id, c.event_id] };
      await write(d);
      expect((await rooms.forwardExtremities(id)).map((x) => x.event_id)).toEqual([d.event_id]);
    });

    it('reads the output log across log pages, and pages log events stored before log_page existed', async () => {
      // Positions far above the allocator's, so no other test's range sees these events.
      const base = 50_000_000 * LOG_PAGE_SIZE;
      const id = room();
      const at = [base + 1, base + LOG_PAGE_SIZE - 1, base + LOG_PAGE_SIZE, base + 3 * LOG_PAGE_SIZE + 5, base + 10 * LOG_PAGE_SIZE];
      for (const [i, stream] of at.entries()) await rooms.insertEvent({ event: ev(id, 'm.room.message', '@a:test', { body: `p${i}` }), stream });
      const bodies = (records: { json: string }[]): unknown[] => records.map((r) => (JSON.parse(r.json) as RoomEvent).content['body']);
      expect(bodies(await rooms.allEventsBetween(base, base + 10 * LOG_PAGE_SIZE, 100))).toEqual(['p0', 'p1', 'p2', 'p3', 'p4']);
      expect(bodies(await rooms.allEventsBetween(base + 1, base + 3 * LOG_PAGE_SIZE + 5, 100))).toEqual(['p1', 'p2', 'p3']);
      // The limit stops the walk over pages.
      expect(bodies(await rooms.allEventsBetween(base, base + 10 * LOG_PAGE_SIZE, 3))).toEqual(['p0', 'p1', 'p2']);
      expect(await rooms.roomsWithEventsBetween(base + 1, base + 10 * LOG_PAGE_SIZE)).toEqual(new Set([id]));
      expect(await rooms.roomsWithEventsBetween(base + 10 * LOG_PAGE_SIZE, base + 11 * LOG_PAGE_SIZE)).toEqual(new Set());

      // An event stored without log_page (by an earlier version) is paged when a RoomStore opens.
      const raw = await store.collection<Doc>({ name: 'room_events' });
      const old = ev(id, 'm.room.message', '@a:test', { body: 'old' });
      const stream = base + 20 * LOG_PAGE_SIZE;
      await raw.insert({ _id: old.event_id, room_id: id, type: old.type, state_key: null, sender: old.sender, stream, depth: 1, origin_server_ts: 1, membership: null, redacted: false, redacted_by: null, redacts: null, json: JSON.stringify(old), unsigned: '{}', txn_id: null, device_id: null });
      expect(await rooms.allEventsBetween(stream - 1, stream, 10)).toEqual([]);
      // A process starting on that data (a new DocumentStore: paging runs once per store).
      const restarted = await open();
      try {
        const reopened = await RoomStore.open(restarted, () => now);
        expect(bodies(await reopened.allEventsBetween(stream - 1, stream, 10))).toEqual(['old']);
        expect((await reopened.getEvent(old.event_id))?.log_page).toBe(logPageOf(stream));
      } finally {
        await restarted.close();
      }
    });

    it('applies a redaction: the redacted form is stored with redacted_because', async () => {
      const id = room();
      const msg = ev(id, 'm.room.message', '@a:test', { body: 'secret', msgtype: 'm.text' });
      await write(msg);
      const redaction = ev(id, 'm.room.redaction', '@a:test', { redacts: msg.event_id, reason: 'oops' });
      await write(redaction);
      expect((await rooms.redactionsOf(msg.event_id)).map((r) => r._id)).toEqual([redaction.event_id]);
      // A backfilled redaction (below 0) counts too; one outside the timeline (NO_STREAM: outlier, rejected) does not.
      const older = ev(id, 'm.room.message', '@a:test', { body: 'history', msgtype: 'm.text' });
      const backfilled = ev(id, 'm.room.redaction', '@a:test', { redacts: older.event_id });
      const outlier = ev(id, 'm.room.redaction', '@a:test', { redacts: older.event_id, reason: 'outlier' });
      await rooms.insertEvent({ event: backfilled, stream: -5 });
      await rooms.insertEvent({ event: outlier, stream: NO_STREAM });
      expect((await rooms.redactionsOf(older.event_id)).map((r) => r._id)).toEqual([backfilled.event_id]);
      const redactedForm = { ...msg, content: {} };
      const because: JsonObject = { type: 'm.room.redaction', event_id: redaction.event_id, origin_server_ts: redaction.origin_server_ts, content: { redacts: msg.event_id, reason: 'oops' }, sender: '@a:test', room_id: id };
      expect(await rooms.applyRedaction(msg.event_id, redactedForm, redaction.event_id, because)).toBe(true);
      const stored = (await rooms.getEvent(msg.event_id))!;
      expect(stored).toMatchObject({ redacted: true, redacted_by: redaction.event_id });
      expect(eventOf(stored).content).toEqual({});
      expect(unsignedOf(stored)['redacted_because']).toEqual(because);
      const client = toClientEvent(stored, { now: redaction.origin_server_ts + 10 });
      expect(client.content).toEqual({});
      expect((client.unsigned['redacted_because'] as JsonObject)['unsigned']).toEqual({ age: 10 });
      expect(toClientEvent((await rooms.getEvent(redaction.event_id))!).redacts).toBe(msg.event_id);
      expect(await rooms.applyRedaction('$missing', redactedForm, redaction.event_id, because)).toBe(false);

      // A redacted state event that is current: the current-state copy is redacted too.
      const topic = ev(id, 'm.room.topic', '@a:test', { topic: 'secret' }, '');
      await write(topic);
      await rooms.applyRedaction(topic.event_id, { ...topic, content: {} }, redaction.event_id, because);
      expect((await rooms.currentStateEventsFor(id, [['m.room.topic', '']])).get('m.room.topic\u0000')!.content).toEqual({});
    });

    it('indexes m.relates_to: children of a parent by rel_type and position, thread events of a room, redacted children left out', async () => {
      const id = room();
      const root = ev(id, 'm.room.message', '@a:test', { body: 'root', msgtype: 'm.text' });
      await write(root);
      const rel = (relType: string, body: string, sender = '@b:test'): RoomEvent =>
        ev(id, 'm.room.message', sender, { body, msgtype: 'm.text', 'm.relates_to': { rel_type: relType, event_id: root.event_id } });
      const t1 = rel('m.thread', 't1');
      const t2 = rel('m.thread', 't2', '@c:test');
      const reaction = ev(id, 'm.reaction', '@b:test', { 'm.relates_to': { rel_type: 'm.annotation', event_id: root.event_id, key: '👍' } });
      const reply = ev(id, 'm.room.message', '@b:test', { body: 'r', 'm.relates_to': { 'm.in_reply_to': { event_id: root.event_id } } });
      const p1 = await write(t1);
      await write(t2);
      await write(reaction);
      await write(reply);
      expect((await rooms.relationsOf(root.event_id)).map((r) => r._id)).toEqual([reaction.event_id, t2.event_id, t1.event_id]);
      expect((await rooms.relationsOf(root.event_id, { relType: 'm.thread', direction: 'forward' })).map((r) => r._id)).toEqual([t1.event_id, t2.event_id]);
      expect((await rooms.relationsOf(root.event_id, { from: p1, limit: 1, direction: 'forward' })).map((r) => r._id)).toEqual([t2.event_id]);
      expect(await rooms.countRelations(root.event_id, 'm.thread')).toBe(2);
      expect((await rooms.roomRelations(id, 'm.thread', { sender: '@c:test' })).map((r) => r._id)).toEqual([t2.event_id]);
      expect((await rooms.getEvent(reply.event_id))!.relates_to).toBeNull();
      await rooms.applyRedaction(t2.event_id, { ...t2, content: {} }, '$redaction', {});
      expect(await rooms.countRelations(root.event_id, 'm.thread')).toBe(1);

      // Backfilled children (below 0) count without a lower bound; those outside the timeline (NO_STREAM) never do.
      const old = rel('m.thread', 'backfilled');
      const edit = ev(id, 'm.room.message', '@a:test', { body: '* e', 'm.new_content': { body: 'e' }, 'm.relates_to': { rel_type: 'm.replace', event_id: root.event_id } });
      const outlier = rel('m.thread', 'outlier');
      await rooms.insertEvent({ event: old, stream: -3 });
      await rooms.insertEvent({ event: edit, stream: -2 });
      await rooms.insertEvent({ event: outlier, stream: NO_STREAM });
      expect((await rooms.relationsOf(root.event_id, { relType: 'm.thread' })).map((r) => r._id)).toEqual([t1.event_id, old.event_id]);
      expect((await rooms.relationsOf(root.event_id, { relType: 'm.thread', from: 0 })).map((r) => r._id)).toEqual([t1.event_id]);
      expect(await rooms.countRelations(root.event_id, 'm.thread')).toBe(2);
      expect((await rooms.relationsOfMany(id, [root.event_id], ['m.thread', 'm.replace'])).map((r) => r._id)).toEqual([t1.event_id, edit.event_id, old.event_id]);
    });

    it('gives unsigned.transaction_id only to the device that sent the event', async () => {
      const id = room();
      const msg = ev(id, 'm.room.message', '@a:test', { body: 'x' });
      await write(msg, { txnId: 'txn1', deviceId: 'DEV' });
      const record = (await rooms.getEvent(msg.event_id))!;
      expect(toClientEvent(record, { requester: { userId: '@a:test', deviceId: 'DEV' } }).unsigned['transaction_id']).toBe('txn1');
      expect(toClientEvent(record, { requester: { userId: '@a:test', deviceId: 'OTHER' } }).unsigned['transaction_id']).toBeUndefined();
      expect(toClientEvent(record, { omitRoomId: true }).room_id).toBeUndefined();
    });

    it('records aliases once and lists them per room', async () => {
      const id = room();
      const alias = `#a${n}_${Date.now()}:test`;
      expect(await rooms.createAlias(alias, id, '@a:test')).toBe(true);
      expect(await rooms.createAlias(alias, '!other:test', '@b:test')).toBe(false);
      expect(await rooms.getAlias(alias)).toMatchObject({ room_id: id, creator: '@a:test' });
      expect(await rooms.aliasesOfRoom(id)).toEqual([alias]);
      expect(await rooms.moveAlias(alias, `${id}x`)).toBe(true);
      expect(await rooms.aliasesOfRoom(`${id}x`)).toEqual([alias]);
      expect(await rooms.aliasesOfRoom(id)).toEqual([]);
      expect(await rooms.moveAlias('#missing:test', id)).toBe(false);
      expect(await rooms.deleteAlias(alias)).toBe(true);
      expect(await rooms.getAlias(alias)).toBeNull();
      expect(await rooms.deleteAlias(alias)).toBe(false);
    });

    it('maps a transaction ID to the first event ID recorded for it, per device and scope', async () => {
      const key = { userId: '@a:test', deviceId: 'D1', scope: 'send', txnId: `t${Date.now()}` };
      expect(await rooms.recordTxn(key, '$first', '!r:test')).toBe('$first');
      expect(await rooms.recordTxn(key, '$second', '!r:test')).toBe('$first');
      expect(await rooms.recordTxn({ ...key, deviceId: 'D2' }, '$third', '!r:test')).toBe('$third');
      expect(await rooms.recordTxn({ ...key, scope: 'redact' }, '$fourth', '!r:test')).toBe('$fourth');
      expect(await rooms.lookupTxn(key)).toMatchObject({ event_id: '$first' });
      expect(await rooms.deleteTxn(key)).toBe(true);
      expect(await rooms.lookupTxn(key)).toBeNull();
      expect(await rooms.recordTxn(key, '$fifth', '!r:test')).toBe('$fifth');
    });

    describe('history visibility (canSeeEvent)', () => {
      /** A room with alice joined, the given visibility, one message, then bob's membership changes. */
      async function scenario(visibility: string | null, bobBefore: string | null, bobAfter: string | null): Promise<{ rec: () => Promise<boolean> }> {
        const id = room();
        await write(ev(id, 'm.room.create', '@a:test', {}, ''));
        await write(ev(id, 'm.room.member', '@a:test', { membership: 'join' }, '@a:test'));
        if (visibility) await write(ev(id, 'm.room.history_visibility', '@a:test', { history_visibility: visibility }, ''));
        if (bobBefore) await write(ev(id, 'm.room.member', bobBefore === 'join' ? '@b:test' : '@a:test', { membership: bobBefore }, '@b:test'));
        const message = ev(id, 'm.room.message', '@a:test', { body: 'x' });
        await write(message);
        if (bobAfter) await write(ev(id, 'm.room.member', bobAfter === 'join' ? '@b:test' : '@a:test', { membership: bobAfter }, '@b:test'));
        return { rec: async () => canSeeEvent(rooms, '@b:test', (await rooms.getEvent(message.event_id))!) };
      }

      it.each([
        // visibility, bob before the message, bob after it, may bob see it?
        ['world_readable', null, null, true],
        ['shared', null, null, false],
        [null, null, 'join', true], // no event: shared; joined later
        ['shared', null, 'join', true],
        ['shared', 'invite', null, false],
        ['invited', 'invite', null, true],
        ['invited', null, 'invite', false],
        ['joined', null, 'join', false],
        ['joined', 'join', null, true],
        ['joined', 'invite', null, false],
        ['shared', 'join', 'leave', true],
      ] as const)('%s, bob %s before and %s after: %s', async (visibility, before, after, expected) => {
        const { rec } = await scenario(visibility, before, after);
        expect(await rec()).toBe(expected);
      });
    });

    describe('safe stream position', () => {
      it('never passes a position allocated but not yet written, and ignores abandoned allocations after the grace period', async () => {
        const name = `test_${Date.now()}_${Math.random().toString(36).slice(2)}`;
        const streams = await StreamAllocator.open(store, () => now);
        const first = await streams.allocate(name);
        await first.release();
        expect(await streams.safePosition(name)).toBe(first.position);
        const slow = await streams.allocate(name); // in flight
        const fast = await streams.allocate(name);
        await fast.release();
        // fast is written but slow is not: readers stop before slow.
        expect(await streams.safePosition(name)).toBe(first.position);
        await slow.release();
        expect(await streams.safePosition(name)).toBe(fast.position);

        const abandoned = await streams.allocate(name); // the writer "dies"
        expect(await streams.safePosition(name)).toBe(fast.position);
        now += STREAM_GAP_GRACE_MS + 1;
        expect(await streams.safePosition(name)).toBe(abandoned.position);
        expect(await streams.pruneAbandoned()).toBeGreaterThanOrEqual(1);
      });

      it('stays behind concurrent writers until all of them are written', async () => {
        const name = `conc_${Date.now()}_${Math.random().toString(36).slice(2)}`;
        const streams = await StreamAllocator.open(store, () => now);
        const written = new Set<number>();
        const writers = Array.from({ length: 8 }, (_, i) =>
          streams.withPosition(name, async (p) => {
            await new Promise((r) => setTimeout(r, 5 * (8 - i)));
            // Every position at or below the safe position must be written by now.
            written.add(p);
            const safe = await streams.safePosition(name);
            for (let q = 1; q <= safe; q++) expect(written.has(q)).toBe(true);
          }),
        );
        await Promise.all(writers);
        expect(await streams.safePosition(name)).toBe(8);
      });
    });
  });
}
