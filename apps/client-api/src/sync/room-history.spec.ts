/**
 * History reading for /sync, /messages and /context against a real RoomStore
 * on SQLite: history visibility (client-server-api "History visibility"),
 * paging in both directions with filters, and the token format.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import type { JsonObject, RoomEvent } from '@atrium/matrix';
import { EVENTS_STREAM, RoomStore, type MembershipRecord } from '@atrium/rooms';
import { MemoryCache } from '@atrium/cache';
import { LazyMemberCache } from './lazy-members';
import { visibleEvents, walkRoom } from './room-history';
import { eventsToken, formatSyncToken, parseSyncToken, zeroPositions } from './sync-token';

const dir = mkdtempSync(join(tmpdir(), 'atrium-sync-'));
let store: DocumentStore;
let rooms: RoomStore;
let counter = 0;
let roomCounter = 0;

beforeAll(async () => {
  store = await openDocumentStore(`sqlite:${join(dir, 'sync.db')}`);
  rooms = await RoomStore.open(store);
});
afterAll(async () => {
  await store?.close();
  rmSync(dir, { recursive: true, force: true });
});

const ALICE = '@alice:test';
const BOB = '@bob:test';

/** Writes an event as the room server does (position, event, state, membership); returns its ID. */
async function write(roomId: string, type: string, sender: string, content: JsonObject, stateKey?: string): Promise<string> {
  counter++;
  const e: RoomEvent = {
    event_id: `$e${counter}`,
    room_id: roomId,
    type,
    sender,
    content,
    origin_server_ts: 1_000 + counter,
    depth: counter,
    prev_events: [],
    auth_events: [],
    hashes: { sha256: 'x' },
    signatures: {},
  };
  if (stateKey !== undefined) e.state_key = stateKey;
  await rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
    const unsigned: JsonObject = {};
    if (stateKey !== undefined) {
      const prev = await rooms.currentStateEvent(roomId, type, stateKey);
      if (prev) unsigned['prev_content'] = JSON.parse(prev.json).content as JsonObject;
    }
    await rooms.insertEvent({ event: e, stream, unsigned });
    if (stateKey !== undefined) await rooms.setCurrentState(e, stream);
    if (type === 'm.room.member') await rooms.setMembership(e, stream);
  });
  return e.event_id;
}

async function newRoom(visibility: string): Promise<string> {
  const roomId = `!room${++roomCounter}:test`;
  await write(roomId, 'm.room.create', ALICE, { room_version: '11' }, '');
  await write(roomId, 'm.room.member', ALICE, { membership: 'join' }, ALICE);
  await write(roomId, 'm.room.history_visibility', ALICE, { history_visibility: visibility }, '');
  return roomId;
}

const message = (roomId: string, body: string, sender = ALICE): Promise<string> => write(roomId, 'm.room.message', sender, { msgtype: 'm.text', body });
const member = (roomId: string, user: string, membership: string): Promise<string> => write(roomId, 'm.room.member', membership === 'invite' ? ALICE : user, { membership }, user);

/**
 * What `user` may see of the room after its three setup events (create,
 * creator's join, history_visibility). The setup events themselves come before
 * any m.room.history_visibility, when the default `shared` applies.
 */
async function seenBy(roomId: string, user: string): Promise<string[]> {
  const all = await rooms.roomEvents(roomId, { from: 0, to: Number.MAX_SAFE_INTEGER, direction: 'forward' });
  const current: MembershipRecord | null = await rooms.getMembership(roomId, user);
  const setup = new Set(all.slice(0, 3).map((r) => r._id));
  return (await visibleEvents(rooms, user, all, current)).map((r) => r._id).filter((id) => !setup.has(id));
}

describe('visibleEvents (history visibility)', () => {
  it('joined: only events while joined, plus the own membership events', async () => {
    const roomId = await newRoom('joined');
    const before = await message(roomId, 'before');
    const invite = await member(roomId, BOB, 'invite');
    const whileInvited = await message(roomId, 'while invited');
    const join = await member(roomId, BOB, 'join');
    const during = await message(roomId, 'during');
    const leave = await member(roomId, BOB, 'leave');
    const after = await message(roomId, 'after');
    const seen = await seenBy(roomId, BOB);
    expect(seen).toEqual([invite, join, during, leave]);
    expect(seen).not.toContain(before);
    expect(seen).not.toContain(whileInvited);
    expect(seen).not.toContain(after);
  });

  it('invited: events from the invite on', async () => {
    const roomId = await newRoom('invited');
    await message(roomId, 'before');
    const invite = await member(roomId, BOB, 'invite');
    const whileInvited = await message(roomId, 'while invited');
    const join = await member(roomId, BOB, 'join');
    expect(await seenBy(roomId, BOB)).toEqual([invite, whileInvited, join]);
  });

  it('shared: everything before a join for a joined member, nothing after a leave', async () => {
    const roomId = await newRoom('shared');
    const before = await message(roomId, 'before');
    await member(roomId, BOB, 'join');
    const seenJoined = await seenBy(roomId, BOB);
    expect(seenJoined).toContain(before);
    const leave = await member(roomId, BOB, 'leave');
    const after = await message(roomId, 'after');
    const seenLeft = await seenBy(roomId, BOB);
    expect(seenLeft).toContain(before);
    expect(seenLeft).toContain(leave);
    expect(seenLeft).not.toContain(after);
  });

  it('shared: a user who never joined sees nothing but their own membership', async () => {
    const roomId = await newRoom('shared');
    await message(roomId, 'before');
    const invite = await member(roomId, BOB, 'invite');
    await message(roomId, 'while invited');
    const reject = await member(roomId, BOB, 'leave');
    expect(await seenBy(roomId, BOB)).toEqual([invite, reject]);
  });

  it('world_readable: everything, even for a stranger', async () => {
    const roomId = await newRoom('world_readable');
    const m = await message(roomId, 'public');
    const seen = await seenBy(roomId, '@stranger:test');
    expect(seen).toEqual([m]);
  });

  it('follows a change of visibility at the event it happens', async () => {
    const roomId = await newRoom('world_readable');
    const open = await message(roomId, 'open');
    await write(roomId, 'm.room.history_visibility', ALICE, { history_visibility: 'joined' }, '');
    const closed = await message(roomId, 'closed');
    const seen = await seenBy(roomId, '@stranger:test');
    expect(seen).toContain(open);
    expect(seen).not.toContain(closed);
  });
});

describe('walkRoom', () => {
  let roomId: string;
  const messages: string[] = [];

  beforeAll(async () => {
    roomId = await newRoom('shared');
    await member(roomId, BOB, 'join');
    for (let i = 0; i < 30; i++) {
      messages.push(await message(roomId, `m${i}`, i % 3 === 0 ? BOB : ALICE));
      if (i % 10 === 9) await write(roomId, 'm.room.topic', ALICE, { topic: `t${i}` }, '');
    }
  });

  async function page(options: { from: number; to: number; direction: 'backward' | 'forward'; limit: number; filter?: object; maxBatches?: number }) {
    return walkRoom(rooms, BOB, roomId, { ...options, membership: await rooms.getMembership(roomId, BOB) });
  }

  it('pages backward with a filter until the start, without repeats or gaps', async () => {
    const { safe } = { safe: await rooms.safeStreamPosition() };
    const seen: string[] = [];
    let to = safe;
    let more = true;
    for (let i = 0; i < 50 && more; i++) {
      const p = await page({ from: 0, to, direction: 'backward', limit: 4, filter: { types: ['m.room.message'] } });
      seen.push(...p.events.map((e) => e._id));
      more = p.more;
      expect(p.next).toBeLessThan(to);
      to = p.next;
    }
    expect(seen).toEqual([...messages].reverse());
  });

  it('pages forward and stops at `to`', async () => {
    const all = await rooms.roomEvents(roomId, { from: 0, to: Number.MAX_SAFE_INTEGER, direction: 'forward' });
    const fifth = all.find((e) => e._id === messages[5])!;
    const p = await page({ from: 0, to: fifth.stream, direction: 'forward', limit: 100, filter: { types: ['m.room.message'] } });
    expect(p.events.map((e) => e._id)).toEqual(messages.slice(0, 6));
    expect(p.more).toBe(false);
    const q = await page({ from: fifth.stream, to: Number.MAX_SAFE_INTEGER, direction: 'forward', limit: 3, filter: { senders: [BOB] } });
    expect(q.events.map((e) => e._id)).toEqual([messages[6], messages[9], messages[12]]);
    expect(q.more).toBe(true);
  });

  it('says "more" when it stops early on a filter that matches nothing', async () => {
    const p = await page({ from: 0, to: Number.MAX_SAFE_INTEGER, direction: 'backward', limit: 5, filter: { types: ['nothing'] }, maxBatches: 1 });
    expect(p.events).toEqual([]);
    expect(p.more).toBe(true);
    const all = await page({ from: 0, to: Number.MAX_SAFE_INTEGER, direction: 'backward', limit: 5, filter: { types: ['nothing'] } });
    expect(all.more).toBe(false);
  });
});

describe('sync tokens', () => {
  it('round-trips and reads missing trailing streams as 0', () => {
    const positions = { ...zeroPositions(), events: 12, presence: 3, device_lists: 9 };
    expect(formatSyncToken(positions)).toBe('s12_0_0_3_0_0_9');
    expect(parseSyncToken('s12_0_0_3_0_0_9')).toEqual(positions);
    expect(parseSyncToken('s7')).toEqual({ ...zeroPositions(), events: 7 });
    expect(parseSyncToken('s7_1_2_3_4_5_6_7_8')?.device_lists).toBe(6);
    expect(eventsToken(-3)).toBe('s0_0_0_0_0_0_0');
  });

  it.each(['', 's', 'x1', 's1_', 's-1', 's1__2', 's1.5', 't1', 's12345678901234567890', '1_2'])('refuses %j', (token) => {
    expect(parseSyncToken(token)).toBeUndefined();
  });
});

describe('LazyMemberCache', () => {
  it('remembers members per device and room, starts over on full state', async () => {
    const cache = new LazyMemberCache(new MemoryCache(), 60_000, 2);
    await cache.record('@u:x', 'D', '!a:x', ['@m1:x']);
    expect((await cache.sent('@u:x', 'D', '!a:x')).has('@m1:x')).toBe(true);
    expect((await cache.sent('@u:x', 'E', '!a:x')).has('@m1:x')).toBe(false);
    await cache.record('@u:x', 'D', '!a:x', ['@m2:x'], true);
    expect([...(await cache.sent('@u:x', 'D', '!a:x'))]).toEqual(['@m2:x']);
    // Bounded: past the maximum the oldest are forgotten (and would be sent again).
    await cache.record('@u:x', 'D', '!a:x', ['@m3:x', '@m4:x']);
    expect([...(await cache.sent('@u:x', 'D', '!a:x'))]).toEqual(['@m3:x', '@m4:x']);
  });
});
