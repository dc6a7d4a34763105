/**
 * RoomStore contract for federation (docs/federation-design.md "Room state
 * with federation"): state groups, state before/after an event, auth chains,
 * events outside the timeline (outliers, rejected, soft-failed). Run against
 * every storage adapter, like room-store.contract.ts.
 */
import type { DocumentStore } from '@atrium/storage';
import { stateKey, type JsonObject, type RoomEvent, type StateKey } from '@atrium/matrix';
import { RoomStore, EVENTS_STREAM, NO_STREAM } from './room-store';
import { STATE_GROUP_SNAPSHOT_INTERVAL } from './state-groups';
import { canSeeEvent } from './history-visibility';

let counter = 0;

function ev(roomId: string, type: string, content: JsonObject, opts: { stateKey?: string; prev?: string[]; auth?: string[]; ts?: number } = {}): RoomEvent {
  counter++;
  const e: RoomEvent = {
    event_id: `$f${counter}_${Math.random().toString(36).slice(2)}`,
    room_id: roomId,
    type,
    sender: '@a:test',
    content,
    origin_server_ts: opts.ts ?? 10_000 + counter,
    depth: counter,
    prev_events: opts.prev ?? [],
    auth_events: opts.auth ?? [],
    hashes: { sha256: 'x' },
    signatures: {},
  };
  if (opts.stateKey !== undefined) e.state_key = opts.stateKey;
  return e;
}

export function describeFederationStateContract(adapter: string, open: () => Promise<DocumentStore>): void {
  describe(`RoomStore federation state contract: ${adapter}`, () => {
    let store: DocumentStore;
    let rooms: RoomStore;
    let n = 0;
    const room = (): string => `!fs${++n}_${Date.now().toString(36)}:test`;

    beforeAll(async () => {
      store = await open();
      rooms = await RoomStore.open(store);
    });
    afterAll(async () => {
      await store?.close();
    });

    it('stores state groups as deltas with a full snapshot every 100 links, and reads them back (also from a fresh store without cache)', async () => {
      const id = room();
      const k = (i: number): StateKey => stateKey('m.test', `k${i % 7}`);
      let prev: string | null = null;
      const expected = new Map<StateKey, string>();
      const ids: string[] = [];
      for (let i = 0; i < STATE_GROUP_SNAPSHOT_INTERVAL + 5; i++) {
        expected.set(k(i), `$e${i}`);
        const gid: string = await rooms.storeStateDelta(id, `g${id}/${i}`, prev, new Map([[k(i), `$e${i}`]]));
        ids.push(gid);
        prev = gid;
      }
      expect((await rooms.stateGroups.record(ids[0]))!.depth_from_full).toBe(0);
      expect((await rooms.stateGroups.record(ids[1]))!).toMatchObject({ prev_group: ids[0], depth_from_full: 1 });
      expect((await rooms.stateGroups.record(ids[STATE_GROUP_SNAPSHOT_INTERVAL - 1]))!.depth_from_full).toBe(STATE_GROUP_SNAPSHOT_INTERVAL - 1);
      expect((await rooms.stateGroups.record(ids[STATE_GROUP_SNAPSHOT_INTERVAL]))!).toMatchObject({ prev_group: null, depth_from_full: 0 });
      const fresh = await RoomStore.open(store);
      expect(new Map(await fresh.stateGroupState(ids[ids.length - 1]))).toEqual(expected);
      expect(new Map(await fresh.stateGroupState(ids[3]))).toEqual(
        new Map([
          [k(0), '$e0'],
          [k(1), '$e1'],
          [k(2), '$e2'],
          [k(3), '$e3'],
        ]),
      );
      expect(await fresh.stateGroupState('nope')).toBeNull();

      // A resolved state stored over a group: removed and changed entries both survive a reload.
      const resolved = new Map(expected);
      resolved.delete(k(1));
      resolved.set(k(2), '$resolved');
      const gid = await rooms.storeStateGroup(id, `${id}/resolved`, resolved, ids[ids.length - 1]);
      expect(JSON.parse((await rooms.stateGroups.record(gid))!.delta)).toEqual({ [k(1)]: null, [k(2)]: '$resolved' });
      expect(new Map(await (await RoomStore.open(store)).stateGroupState(gid))).toEqual(resolved);
      // Idempotent: storing the same group again changes nothing, even with other content (a group never changes).
      expect(await rooms.storeStateGroup(id, `${id}/resolved`, resolved, ids[ids.length - 1])).toBe(gid);
      expect(await rooms.storeStateGroup(id, `${id}/resolved`, new Map([[k(0), '$other']]), null)).toBe(gid);
      expect(new Map(await rooms.stateGroupState(gid))).toEqual(resolved);
    });

    it('answers the state before and after events (groups, and the line of history for events stored without one)', async () => {
      const id = room();
      await rooms.createRoom({ roomId: id, version: '10', creator: '@a:test' });
      const create = ev(id, 'm.room.create', { creator: '@a:test' }, { stateKey: '' });
      const name = ev(id, 'm.room.name', { name: 'one' }, { stateKey: '', prev: [create.event_id] });
      const msg = ev(id, 'm.room.message', { body: 'x' }, { prev: [name.event_id] });
      const g1 = await rooms.storeStateDelta(id, create.event_id, null, new Map([[stateKey('m.room.create', ''), create.event_id]]));
      const g2 = await rooms.storeStateDelta(id, name.event_id, g1, new Map([[stateKey('m.room.name', ''), name.event_id]]));
      await rooms.streams.withPosition(EVENTS_STREAM, (s) => rooms.insertEvent({ event: create, stream: s, stateGroup: g1, prevStateGroup: null }));
      await rooms.streams.withPosition(EVENTS_STREAM, (s) => rooms.insertEvent({ event: name, stream: s, stateGroup: g2, prevStateGroup: g1 }));
      await rooms.streams.withPosition(EVENTS_STREAM, (s) => rooms.insertEvent({ event: msg, stream: s, stateGroup: g2 }));
      expect(await rooms.stateIdsBefore(name.event_id)).toEqual(new Map([[stateKey('m.room.create', ''), create.event_id]]));
      const after = new Map([
        [stateKey('m.room.create', ''), create.event_id],
        [stateKey('m.room.name', ''), name.event_id],
      ]);
      expect(await rooms.stateIdsAfter(name.event_id)).toEqual(after);
      expect(await rooms.stateIdsBefore(msg.event_id)).toEqual(after);
      expect(await rooms.stateIdsAfter(msg.event_id)).toEqual(after);
      expect(await rooms.stateIdsAfter('$unknown')).toBeNull();

      // An event stored before state groups existed: the line of history.
      const legacyRoom = room();
      const c2 = ev(legacyRoom, 'm.room.create', {}, { stateKey: '' });
      const t2 = ev(legacyRoom, 'm.room.topic', { topic: 't' }, { stateKey: '' });
      await rooms.streams.withPosition(EVENTS_STREAM, (s) => rooms.insertEvent({ event: c2, stream: s }));
      await rooms.streams.withPosition(EVENTS_STREAM, (s) => rooms.insertEvent({ event: t2, stream: s }));
      expect(await rooms.stateIdsBefore(t2.event_id)).toEqual(new Map([[stateKey('m.room.create', ''), c2.event_id]]));
      expect((await rooms.stateIdsAfter(t2.event_id))!.get(stateKey('m.room.topic', ''))).toBe(t2.event_id);
    });

    it('gives a room with current state but no group a snapshot group, and replaces current state with a resolved one', async () => {
      const id = room();
      await rooms.createRoom({ roomId: id, version: '10', creator: '@a:test' });
      expect(await rooms.currentStateGroup(id)).toBeNull();
      const create = ev(id, 'm.room.create', {}, { stateKey: '' });
      const topicA = ev(id, 'm.room.topic', { topic: 'a' }, { stateKey: '' });
      const topicB = ev(id, 'm.room.topic', { topic: 'b' }, { stateKey: '' });
      const join = ev(id, 'm.room.member', { membership: 'join' }, { stateKey: '@a:test' });
      for (const e of [create, topicA, topicB, join]) {
        await rooms.streams.withPosition(EVENTS_STREAM, async (s) => {
          await rooms.insertEvent({ event: e, stream: s });
          if (e !== topicB && e !== join) await rooms.setCurrentState(e, s);
        });
      }
      const group = await rooms.currentStateGroup(id);
      expect(group).not.toBeNull();
      expect(new Map(await rooms.stateGroupState(group!))).toEqual(
        new Map([
          [stateKey('m.room.create', ''), create.event_id],
          [stateKey('m.room.topic', ''), topicA.event_id],
        ]),
      );
      expect(await rooms.currentStateGroup(id)).toBe(group);
      const changed = await rooms.replaceCurrentState(
        id,
        new Map([
          [stateKey('m.room.create', ''), create.event_id],
          [stateKey('m.room.member', '@a:test'), join.event_id],
        ]),
        new Map(),
      );
      expect(changed.map((r) => r._id)).toEqual([join.event_id]);
      expect((await rooms.currentStateIds(id)).map((r) => r.event_id).sort()).toEqual([create.event_id, join.event_id].sort());
      expect((await rooms.currentStateEvent(id, 'm.room.member', '@a:test'))!._id).toBe(join.event_id);
    });

    it('follows auth_events to the whole auth chain, skipping unknown events', async () => {
      const id = room();
      const create = ev(id, 'm.room.create', {}, { stateKey: '' });
      const member = ev(id, 'm.room.member', { membership: 'join' }, { stateKey: '@a:test', auth: [create.event_id] });
      const pl = ev(id, 'm.room.power_levels', {}, { stateKey: '', auth: [create.event_id, member.event_id] });
      const msg = ev(id, 'm.room.message', {}, { auth: [create.event_id, member.event_id, pl.event_id, '$missing'] });
      for (const e of [create, member, pl, msg]) await rooms.insertEvent({ event: e, stream: NO_STREAM, outlier: true });
      const chain = await rooms.authChain([msg.event_id]);
      expect(chain.map((r) => r._id).sort()).toEqual([create.event_id, member.event_id, pl.event_id].sort());
      expect((await rooms.authChain([member.event_id])).map((r) => r._id)).toEqual([create.event_id]);
      expect(await rooms.authChain([])).toEqual([]);
    });

    it('keeps outliers, rejected and soft-failed events out of every timeline reader', async () => {
      const id = room();
      const from = await rooms.safeStreamPosition();
      const shown = ev(id, 'm.room.message', { body: 'shown' }, { ts: 50 });
      const hidden: Array<{ e: RoomEvent; flags: { outlier?: boolean; rejected?: string; softFailed?: boolean } }> = [
        { e: ev(id, 'm.room.message', { body: 'outlier', 'm.relates_to': { rel_type: 'm.thread', event_id: shown.event_id } }, { ts: 60 }), flags: { outlier: true } },
        { e: ev(id, 'm.room.name', { name: 'rejected' }, { stateKey: '', ts: 70 }), flags: { rejected: 'auth rule 8' } },
        { e: ev(id, 'm.room.redaction', { redacts: shown.event_id }, { ts: 80 }), flags: { softFailed: true } },
      ];
      await rooms.streams.withPosition(EVENTS_STREAM, (s) => rooms.insertEvent({ event: shown, stream: s }));
      for (const { e, flags } of hidden) {
        await expect(rooms.insertEvent({ event: e, stream: 12345, ...flags })).rejects.toThrow(/no stream position/);
        expect(await rooms.insertEvent({ event: e, stream: NO_STREAM, ...flags })).toBe(true);
      }
      expect(await rooms.getEvent(hidden[1].e.event_id)).toMatchObject({ rejected: 'auth rule 8', outlier: false, soft_failed: false, stream: NO_STREAM });
      expect(await rooms.getEvent(hidden[2].e.event_id)).toMatchObject({ soft_failed: true, rejected: null });
      const to = await rooms.safeStreamPosition();
      const only = [shown.event_id];
      expect((await rooms.roomEvents(id, { from: 0, to })).map((r) => r._id)).toEqual(only);
      expect((await rooms.roomEvents(id, { from: 0, to, direction: 'forward' })).map((r) => r._id)).toEqual(only);
      expect((await rooms.allEventsBetween(from, to, 100)).filter((r) => r.room_id === id).map((r) => r._id)).toEqual(only);
      expect((await rooms.latestEvent(id))!._id).toBe(shown.event_id);
      expect(await rooms.eventAtTimestamp(id, 55, 'f')).toBeNull();
      expect((await rooms.eventAtTimestamp(id, 100, 'b'))!._id).toBe(shown.event_id);
      expect(await rooms.relationsOf(shown.event_id)).toEqual([]);
      expect(await rooms.relationsOfMany(shown.room_id, [shown.event_id], ['m.thread'])).toEqual([]);
      expect(await rooms.countRelations(shown.event_id, 'm.thread')).toBe(0);
      expect(await rooms.redactionsOf(shown.event_id)).toEqual([]);
      expect((await rooms.stateAtPosition(id, to)).map((r) => r._id)).toEqual([]);
      expect(await rooms.roomHasEventsBetween(id, 0, to)).toBe(true);
      // By ID (GET /rooms/{roomId}/event/{eventId}, /context): a joined user sees the shown event, not the others.
      const join = ev(id, 'm.room.member', { membership: 'join' }, { stateKey: '@a:test' });
      await rooms.setMembership(join, await rooms.safeStreamPosition());
      expect(await canSeeEvent(rooms, '@a:test', (await rooms.getEvent(shown.event_id))!)).toBe(true);
      expect(await canSeeEvent(rooms, '@a:test', (await rooms.getEvent(hidden[1].e.event_id))!)).toBe(false);
      expect(await canSeeEvent(rooms, '@a:test', (await rooms.getEvent(hidden[2].e.event_id))!)).toBe(false);
      expect((await rooms.roomEvents(id, { from: 0, to })).length).toBe(1);
    });

    it('promotes an outlier into the timeline once its place is known', async () => {
      const id = room();
      const e = ev(id, 'm.room.topic', { topic: 'late' }, { stateKey: '' });
      await rooms.insertEvent({ event: e, stream: NO_STREAM, outlier: true });
      const g = await rooms.storeStateDelta(id, e.event_id, null, new Map([[stateKey('m.room.topic', ''), e.event_id]]));
      const position = await rooms.streams.withPosition(EVENTS_STREAM, async (s) => {
        expect(await rooms.promoteOutlier(e.event_id, { stream: s, stateGroup: g, prevStateGroup: g, softFailed: false })).toBe(true);
        return s;
      });
      expect(await rooms.getEvent(e.event_id)).toMatchObject({ outlier: false, stream: position, state_group: g });
      expect((await rooms.roomEvents(id, { from: 0, to: await rooms.safeStreamPosition() })).map((r) => r._id)).toEqual([e.event_id]);
      expect((await rooms.stateAtPosition(id, position)).map((r) => r._id)).toEqual([e.event_id]);
      expect(await rooms.promoteOutlier(e.event_id, { stream: 1, stateGroup: g, prevStateGroup: g, softFailed: false })).toBe(false);
    });
  });
}
