/**
 * The room writer against real parts: SQLite storage, the in-process bus and
 * the memory cache (nothing we own is mocked). Checks what the HTTP suite
 * cannot see: the PDUs themselves (hashes, signatures, references, depth,
 * auth events), the linear history under concurrent writers, the sync.wake
 * notifications.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus } from '@atrium/bus';
import { MemoryCache } from '@atrium/cache';
import { MatrixError } from '@atrium/http';
import {
  authEventIds,
  checkContentHash,
  generateSigningKey,
  getRoomVersion,
  prevEventIds,
  verifyPduSignatures,
  type JsonObject,
  type RoomEvent,
} from '@atrium/matrix';
import { eventOf, RoomStore, unsignedOf } from '@atrium/rooms';
import { Metrics } from '@atrium/telemetry';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import type { CreateRoomRequest, SendEventRequest } from './room-server.api';
import { RoomWriter, SYNC_WAKE_SUBJECT, type SyncWake } from './room-writer';

const SERVER = 'writer.test';
const alice = `@alice:${SERVER}`;
const bob = `@bob:${SERVER}`;
const key = generateSigningKey('w1');

function createRequest(version: string, extra: Partial<CreateRoomRequest> = {}): CreateRoomRequest {
  return {
    sender: alice,
    room_version: version,
    creation_content: {},
    visibility: 'private',
    events: [
      { type: 'm.room.member', state_key: alice, content: { membership: 'join' } },
      { type: 'm.room.power_levels', state_key: '', content: { users: Number(version) >= 12 ? {} : { [alice]: 100 }, redact: 50, state_default: 50, events_default: 0 } },
      { type: 'm.room.join_rules', state_key: '', content: { join_rule: 'public' } },
      { type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'shared' } },
    ],
    ...extra,
  };
}

describe('RoomWriter', () => {
  let dir: string;
  let store: DocumentStore;
  let rooms: RoomStore;
  let bus: InProcessBus;
  let writer: RoomWriter;
  let wakes: SyncWake[];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-writer-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    rooms = await RoomStore.open(store);
    bus = new InProcessBus();
    wakes = [];
    await bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (m) => void wakes.push(m.data));
    writer = new RoomWriter(rooms, bus, { serverName: SERVER, signingKey: key, cache: new MemoryCache() });
  });

  afterEach(async () => {
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function history(roomId: string): Promise<RoomEvent[]> {
    return (await rooms.roomEvents(roomId, { from: 0, to: await rooms.safeStreamPosition(), direction: 'forward' })).map(eventOf);
  }

  const lookup = (server: string, keyId: string) => (server === SERVER && keyId === key.keyId ? { key: key.publicKey } : undefined);

  it('records the state group after each local event (docs/federation-design.md "Room state with federation")', async () => {
    const { room_id } = await writer.createRoom(createRequest('10'));
    const before = await rooms.currentStateIds(room_id);
    const msg = await writer.sendEvent({ room_id, sender: alice, type: 'm.room.message', content: { body: 'hi' } });
    const topic = await writer.sendEvent({ room_id, sender: alice, type: 'm.room.topic', state_key: '', content: { topic: 't' } });
    const idsOf = (records: Array<{ type: string; state_key: string; event_id: string }>) => new Map(records.map((r) => [`${r.type}\u0000${r.state_key}`, r.event_id]));
    // A message: the state before and after it are the current state when it was sent.
    expect(await rooms.stateIdsAfter(msg.event_id)).toEqual(idsOf(before));
    expect(await rooms.stateIdsBefore(msg.event_id)).toEqual(idsOf(before));
    // A state event: before it the old state, after it the old state plus itself, which is now current.
    expect(await rooms.stateIdsBefore(topic.event_id)).toEqual(idsOf(before));
    const after = await rooms.stateIdsAfter(topic.event_id);
    expect(after).toEqual(idsOf(await rooms.currentStateIds(room_id)));
    expect(after!.get('m.room.topic\u0000')).toBe(topic.event_id);
    expect((await rooms.getRoom(room_id))!.current_state_group).toBe(topic.event_id);
    // Every event of the room has a group.
    for (const e of await history(room_id)) expect((await rooms.getEvent(e.event_id))!.state_group).toBeTruthy();
  });

  it.each(['1', '3', '6', '10', '11', '12'])('creates a version %s room whose events are hashed, signed, chained and authorised', async (versionId) => {
    const version = getRoomVersion(versionId)!;
    const { room_id: roomId } = await writer.createRoom(createRequest(versionId));
    const events = await history(roomId);
    expect(events.map((e) => e.type)).toEqual(['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules', 'm.room.history_visibility']);
    events.forEach((event, i) => {
      expect(checkContentHash(event, version)).toBe(true);
      expect(verifyPduSignatures(event, version, lookup).ok).toBe(true);
      expect(event.depth).toBe(i + 1);
      // Each event follows the one before: one writer, one line of history.
      expect(prevEventIds(event)).toEqual(i === 0 ? [] : [events[i - 1].event_id]);
      if (version.eventIdFormat === 'explicit') {
        expect(event.event_id).toMatch(new RegExp(`^\\$[A-Za-z0-9]+:${SERVER.replace('.', '\\.')}$`));
        if (i > 0) expect(Array.isArray(event.prev_events[0])).toBe(true);
      }
    });
    const create = events[0];
    if (version.roomIdFromCreateEvent) {
      expect(roomId).toBe(`!${create.event_id.slice(1)}`);
      expect(create.room_id).toBe(roomId);
    } else {
      expect(roomId).toMatch(new RegExp(`:${SERVER.replace('.', '\\.')}$`));
    }
    expect('creator' in create.content).toBe(!version.implicitRoomCreator);
    // The member event's auth events: create (not from v12), and nothing else yet.
    const member = events[1];
    expect(authEventIds(member)).toEqual(version.roomIdFromCreateEvent ? [] : [create.event_id]);
    // join_rules: create (pre-v12), power levels, sender's membership.
    const joinRules = events[3];
    expect(new Set(authEventIds(joinRules))).toEqual(new Set([...(version.roomIdFromCreateEvent ? [] : [create.event_id]), events[2].event_id, member.event_id]));
    expect((await rooms.forwardExtremities(roomId)).map((x) => x.event_id)).toEqual([events[4].event_id]);
    expect(await rooms.getRoom(roomId)).toMatchObject({ version: versionId, creator: alice, visibility: 'private' });
  });

  it('gives two identical v12 createRoom requests in the same millisecond two rooms', async () => {
    // A frozen clock: both create events would otherwise have the same reference hash, so the same room ID.
    const frozen = new RoomWriter(rooms, bus, { serverName: SERVER, signingKey: key, cache: new MemoryCache(), now: () => 1_700_000_000_000 });
    const [a, b] = await Promise.all([frozen.createRoom(createRequest('12')), frozen.createRoom(createRequest('12'))]);
    expect(a.room_id).not.toBe(b.room_id);
    for (const roomId of [a.room_id, b.room_id]) {
      expect((await history(roomId)).map((e) => e.type)).toEqual(['m.room.create', 'm.room.member', 'm.room.power_levels', 'm.room.join_rules', 'm.room.history_visibility']);
    }
  });

  it('refuses what the auth rules refuse, naming the rule, and stores nothing', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('12'));
    const before = (await history(roomId)).length;
    const error = await writer.sendEvent({ room_id: roomId, sender: bob, type: 'm.room.message', content: { body: 'hi' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MatrixError);
    expect(error).toMatchObject({ errcode: 'M_FORBIDDEN', status: 403 });
    expect((error as MatrixError).message).toMatch(/auth rule \d/);
    expect((await history(roomId)).length).toBe(before);
    expect(await writer.sendEvent({ room_id: '!nope:writer.test', sender: alice, type: 'm.room.message', content: {} }).catch((e: MatrixError) => e.errcode)).toBe('M_FORBIDDEN');
  });

  it('keeps one line of history when many writes to one room arrive at once, on two replicas', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('12'));
    // A second replica: its own queue, the same storage and cache (the cluster's shape).
    const replica = new RoomWriter(await RoomStore.open(store), bus, { serverName: SERVER, signingKey: key, cache: (writer as unknown as { options: { cache: MemoryCache } }).options.cache });
    const sends = Array.from({ length: 30 }, (_, i) =>
      (i % 2 === 0 ? writer : replica).sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: `m${i}` } }),
    );
    const results = await Promise.all(sends);
    expect(new Set(results.map((r) => r.event_id)).size).toBe(30);
    const events = await history(roomId);
    for (let i = 1; i < events.length; i++) {
      expect(prevEventIds(events[i])).toEqual([events[i - 1].event_id]);
      expect(events[i].depth).toBe(events[i - 1].depth + 1);
    }
    expect(await rooms.forwardExtremities(roomId)).toHaveLength(1);
  });

  it('gives the same event for a repeated transaction, even when both arrive at once', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('10'));
    const txn = { device_id: 'DEV', scope: `send\n${roomId}\nm.room.message`, txn_id: 't1' };
    const [a, b] = await Promise.all([
      writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'once' }, txn }),
      writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'once' }, txn }),
    ]);
    expect(a.event_id).toBe(b.event_id);
    expect((await history(roomId)).filter((e) => e.type === 'm.room.message')).toHaveLength(1);
    const record = await rooms.getEvent(a.event_id);
    expect(record).toMatchObject({ txn_id: 't1', device_id: 'DEV' });
  });

  it('sends for real a transaction whose record outlived its event (a writer died between the two)', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('12'));
    const txn = { device_id: 'DEV', scope: `send\n${roomId}\nm.room.message`, txn_id: 'lost' };
    await rooms.recordTxn({ userId: alice, deviceId: 'DEV', scope: txn.scope, txnId: 'lost' }, '$never-stored', roomId);
    const sent = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'retry' }, txn });
    expect(sent.event_id).not.toBe('$never-stored');
    expect(await rooms.getEvent(sent.event_id)).not.toBeNull();
    const again = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'retry' }, txn });
    expect(again.event_id).toBe(sent.event_id);
  });

  it('stores prev_content for replaced state and applies redactions per room version', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('11'));
    const first = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.name', state_key: '', content: { name: 'one' } });
    const second = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.name', state_key: '', content: { name: 'two' } });
    expect(unsignedOf((await rooms.getEvent(second.event_id))!)).toEqual({ prev_content: { name: 'one' }, prev_sender: alice, replaces_state: first.event_id });

    const message = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'secret', msgtype: 'm.text' } });
    const redaction = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.redaction', content: { reason: 'oops' }, redacts: message.event_id });
    const stored = (await rooms.getEvent(message.event_id))!;
    expect(stored.redacted).toBe(true);
    expect(eventOf(stored).content).toEqual({});
    expect(unsignedOf(stored)['redacted_because']).toMatchObject({ event_id: redaction.event_id, type: 'm.room.redaction' });
    // v11: `redacts` is in the content of the redaction event.
    expect(eventOf((await rooms.getEvent(redaction.event_id))!).content).toEqual({ reason: 'oops', redacts: message.event_id });
    // A redacted event still verifies: signatures cover the redacted form.
    expect(verifyPduSignatures(eventOf(stored), '11', lookup).ok).toBe(true);
  });

  it('wakes sync after each event, naming the target of membership changes', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('12'));
    const invite = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.member', state_key: bob, content: { membership: 'invite' } });
    await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'x' } });
    await new Promise((resolve) => setTimeout(resolve, 10));
    // Earlier wake-ups (the room's creation) may still be arriving; look from the invite on.
    expect(wakes.filter((w) => w.position >= invite.stream).sort((a, b) => a.position - b.position)).toEqual([
      { stream: 'events', position: invite.stream, room_id: roomId, user_ids: [bob] },
      { stream: 'events', position: invite.stream + 1, room_id: roomId },
    ]);
  });

  it('makes a user leave every room they are joined to, invited to or knocking on', async () => {
    const { room_id: joined } = await writer.createRoom(createRequest('12'));
    await writer.sendEvent({ room_id: joined, sender: bob, type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    const { room_id: invited } = await writer.createRoom(createRequest('12'));
    await writer.sendEvent({ room_id: invited, sender: alice, type: 'm.room.member', state_key: bob, content: { membership: 'invite' } });
    const { room_id: untouched } = await writer.createRoom(createRequest('12'));

    const left = await writer.leaveAllRooms(bob, 'Account deactivated');
    expect(left.sort()).toEqual([joined, invited].sort());
    for (const roomId of [joined, invited]) {
      const membership = (await rooms.getMembership(roomId, bob))!;
      expect(membership.membership).toBe('leave');
      expect(eventOf((await rooms.getEvent(membership.event_id))!).content).toEqual({ membership: 'leave', reason: 'Account deactivated' } as JsonObject);
    }
    expect(await rooms.getMembership(untouched, bob)).toBeNull();
    expect(await writer.leaveAllRooms(bob)).toEqual([]);
  });

  it('answers an unknown room version and a taken alias before storing anything', async () => {
    await expect(writer.createRoom(createRequest('99'))).rejects.toMatchObject({ errcode: 'M_UNSUPPORTED_ROOM_VERSION', status: 400 });
    const alias = `#taken:${SERVER}`;
    await writer.createRoom(createRequest('12', { alias }));
    await expect(writer.createRoom(createRequest('12', { alias }))).rejects.toMatchObject({ errcode: 'M_ROOM_IN_USE', status: 400 });
  });

  it.each(['1', '12'])('refuses drafts no room version accepts (v%s): a second create, bad member keys, long fields, redactions of nothing', async (versionId) => {
    const { room_id: roomId } = await writer.createRoom(createRequest(versionId));
    const send = (draft: Partial<SendEventRequest>) => writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: {}, ...draft }).catch((e: MatrixError) => [e.status, e.errcode]);
    expect(await send({ type: 'm.room.create', state_key: '' })).toEqual([403, 'M_FORBIDDEN']);
    expect(await send({ type: 'm.room.member', state_key: 'bob', content: { membership: 'invite' } })).toEqual([400, 'M_INVALID_PARAM']);
    expect(await send({ type: 'x'.repeat(256) })).toEqual([413, 'M_TOO_LARGE']);
    expect(await send({ type: 'm.room.topic', state_key: 'é'.repeat(128) })).toEqual([413, 'M_TOO_LARGE']);
    expect(await send({ type: 'm.room.redaction' })).toEqual([400, 'M_BAD_JSON']);
    expect(await send({ type: '' })).toEqual([400, 'M_INVALID_PARAM']);
  });

  it.each([
    ['10', '12'],
    ['12', '11'],
    ['1', '10'],
  ])('upgrades a v%s room to v%s: predecessor, copied state, moved aliases, tombstone, restricted power levels', async (from, to) => {
    const alias = `#up${from}_${to}:${SERVER}`;
    const { room_id: oldId } = await writer.createRoom(createRequest(from, { alias, events: [...createRequest(from).events, { type: 'm.room.name', state_key: '', content: { name: 'Old' } }, { type: 'org.example.private', state_key: '', content: { x: 1 } }] }));
    await writer.sendEvent({ room_id: oldId, sender: bob, type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    const { replacement_room: newId } = await writer.upgradeRoom({ room_id: oldId, sender: alice, new_version: to });
    const events = await history(newId);
    const create = events[0];
    expect(create.content['room_version']).toBe(to);
    expect((create.content['predecessor'] as JsonObject)['room_id']).toBe(oldId);
    const state = new Map((await rooms.currentState(newId)).map((r) => [r.type, eventOf(r).content]));
    expect(state.get('m.room.name')).toEqual({ name: 'Old' });
    expect(state.get('m.room.join_rules')).toEqual({ join_rule: 'public' });
    expect(state.has('org.example.private')).toBe(false);
    // Members are not carried over: bob joins the new room himself.
    expect(await rooms.joinedUsers(newId)).toEqual([alice]);
    expect((await rooms.getAlias(alias))!.room_id).toBe(newId);
    expect(eventOf((await rooms.currentStateEvent(oldId, 'm.room.tombstone', ''))!).content).toEqual({ body: 'This room has been replaced', replacement_room: newId });
    const oldLevels = eventOf((await rooms.currentStateEvent(oldId, 'm.room.power_levels', ''))!).content;
    expect([oldLevels['events_default'], oldLevels['invite']]).toEqual([50, 50]);
    await expect(writer.sendEvent({ room_id: oldId, sender: bob, type: 'm.room.message', content: {} })).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });
    await writer.sendEvent({ room_id: newId, sender: bob, type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    // The upgrader can still change state in the new room.
    await writer.sendEvent({ room_id: newId, sender: alice, type: 'm.room.topic', state_key: '', content: { topic: 'new' } });
  });

  it('refuses an upgrade by a user who may not send the tombstone, or to an unknown version', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('10'));
    await writer.sendEvent({ room_id: roomId, sender: bob, type: 'm.room.member', state_key: bob, content: { membership: 'join' } });
    await expect(writer.upgradeRoom({ room_id: roomId, sender: bob, new_version: '12' })).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });
    await expect(writer.upgradeRoom({ room_id: roomId, sender: alice, new_version: '77' })).rejects.toMatchObject({ errcode: 'M_UNSUPPORTED_ROOM_VERSION' });
    await expect(writer.upgradeRoom({ room_id: '!none:writer.test', sender: alice, new_version: '12' })).rejects.toMatchObject({ errcode: 'M_FORBIDDEN' });
  });

  it('completes the effects of an event whose writer died after storing it, before the next write', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('12'));
    const one = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.name', state_key: '', content: { name: 'one' } });
    const two = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.name', state_key: '', content: { name: 'two' } });
    // Put the room back as a writer that died right after storing `two` leaves it:
    // the row is there, its effects (current state, extremities, applied position) are not.
    const oneEvent = eventOf((await rooms.getEvent(one.event_id))!);
    await rooms.setCurrentState(oneEvent, one.stream);
    await rooms.updateExtremities(oneEvent, [two.event_id]);
    await rooms.markApplied(roomId, one.stream);
    await rooms.markPending(roomId, two.stream);
    expect(eventOf((await rooms.currentStateEvent(roomId, 'm.room.name', ''))!).content).toEqual({ name: 'one' });

    const next = await writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'after' } });
    expect(eventOf((await rooms.currentStateEvent(roomId, 'm.room.name', ''))!).content).toEqual({ name: 'two' });
    expect(prevEventIds(eventOf((await rooms.getEvent(next.event_id))!))).toEqual([two.event_id]);
    expect((await rooms.forwardExtremities(roomId)).map((x) => x.event_id)).toEqual([next.event_id]);
    expect((await rooms.getRoom(roomId))!.applied_stream).toBe(next.stream);
  });

  it('counts outcomes and input lag in its metrics', async () => {
    const metrics = new Metrics();
    const measured = new RoomWriter(rooms, bus, { serverName: SERVER, signingKey: key, metrics });
    const { room_id: roomId } = await measured.createRoom(createRequest('12'));
    await measured.sendEvent({ room_id: roomId, sender: bob, type: 'm.room.message', content: {} }).catch(() => undefined);
    const text = (await metrics.text()).body;
    expect(text).toMatch(/atrium_roomserver_events_total\{outcome="accepted"\} 4/);
    expect(text).toMatch(/atrium_roomserver_events_total\{outcome="M_FORBIDDEN"\} 1/);
    expect(text).toMatch(/atrium_roomserver_input_lag_seconds_count\{kind="room"\} 2/);
  });

  it('refuses content that is not canonical JSON in v6+ rooms and oversized events', async () => {
    const { room_id: roomId } = await writer.createRoom(createRequest('12'));
    await expect(writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { n: 1.5 } })).rejects.toMatchObject({ errcode: 'M_BAD_JSON' });
    await expect(writer.sendEvent({ room_id: roomId, sender: alice, type: 'm.room.message', content: { body: 'x'.repeat(70_000) } })).rejects.toMatchObject({ errcode: 'M_TOO_LARGE', status: 413 });
  });
});
