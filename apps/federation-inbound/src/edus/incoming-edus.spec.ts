/**
 * IncomingEdus against real storage (SQLite), the in-process bus and the
 * real stores the /sync sections read: each EDU type lands where local
 * clients see it, and EDUs about another server's users, rooms the user is
 * not in, or with bad content change nothing.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountStore } from '@atrium/accounts';
import { InProcessBus } from '@atrium/bus';
import { ReceiptStore, TypingStore } from '@atrium/ephemeral';
import type { RoomEvent } from '@atrium/matrix';
import { RoomStore, StreamAllocator, SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { PresenceStore, ToDeviceStore } from '@atrium/user-data';
import { IncomingEdus } from './incoming-edus';

const HERE = 'here.test';
const THERE = 'there.test';
const alice = `@alice:${HERE}`;
const bob = `@bob:${THERE}`;
const ROOM = `!room:${HERE}`;

/** Lets the in-process bus deliver notifications (they go out asynchronously). */
const settle = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 20));

describe('IncomingEdus', () => {
  let dir: string;
  let store: DocumentStore;
  let bus: InProcessBus;
  let rooms: RoomStore;
  let accounts: AccountStore;
  let edus: IncomingEdus;
  let wakes: SyncWake[];
  let typing: TypingStore;
  let receipts: ReceiptStore;
  let presence: PresenceStore;
  let toDevice: ToDeviceStore;

  async function stored(event: Partial<RoomEvent> & { event_id: string; type: string; sender: string }): Promise<number> {
    const full = { room_id: ROOM, content: {}, origin_server_ts: 1, depth: 1, prev_events: [], auth_events: [], hashes: { sha256: 'x' }, signatures: {}, ...event } as RoomEvent;
    return rooms.streams.withPosition('events', async (stream) => {
      await rooms.insertEvent({ event: full, stream });
      if (full.state_key !== undefined) await rooms.setCurrentState(full, stream);
      if (full.type === 'm.room.member') await rooms.setMembership(full, stream);
      return stream;
    });
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-edus-in-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    bus = new InProcessBus();
    wakes = [];
    await bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (m) => void wakes.push(m.data));
    rooms = await RoomStore.open(store);
    accounts = await AccountStore.open(store);
    await accounts.createUser({ userId: alice, localpart: 'alice', passwordHash: null });
    await accounts.ensureDevice(alice, 'PHONE', null, null);
    await accounts.ensureDevice(alice, 'LAPTOP', null, null);
    await rooms.createRoom({ roomId: ROOM, version: '10', creator: alice });
    await stored({ event_id: '$a', type: 'm.room.member', state_key: alice, sender: alice, content: { membership: 'join' } });
    await stored({ event_id: '$b', type: 'm.room.member', state_key: bob, sender: bob, content: { membership: 'join' } });
    await stored({ event_id: '$m1', type: 'm.room.message', sender: alice, content: { body: 'one' } });
    await stored({ event_id: '$m2', type: 'm.room.message', sender: alice, content: { body: 'two' } });
    edus = await IncomingEdus.open(store, bus, accounts, HERE);
    const positions = await StreamAllocator.open(store);
    const noWake = async (): Promise<void> => undefined;
    typing = await TypingStore.open(store, positions, noWake);
    receipts = await ReceiptStore.open(store, positions, noWake);
    presence = await PresenceStore.open(store, positions, noWake);
    toDevice = await ToDeviceStore.open(store, positions, noWake);
  });

  afterEach(async () => {
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('m.typing: a joined user of the origin starts and stops typing; other servers and non-members are ignored', async () => {
    await edus.handle({ origin: 'evil.test', edu_type: 'm.typing', content: { room_id: ROOM, user_id: bob, typing: true } });
    await edus.handle({ origin: THERE, edu_type: 'm.typing', content: { room_id: ROOM, user_id: `@carol:${THERE}`, typing: true } });
    await edus.handle({ origin: THERE, edu_type: 'm.typing', content: { room_id: ROOM, user_id: bob, typing: 'yes' } });
    expect((await typing.typingIn([ROOM])).get(ROOM)).toBeUndefined();
    await edus.handle({ origin: THERE, edu_type: 'm.typing', content: { room_id: ROOM, user_id: bob, typing: true } });
    expect((await typing.typingIn([ROOM])).get(ROOM)).toEqual([bob]);
    await settle();
    expect(wakes.some((w) => w.stream === 'typing' && w.room_id === ROOM)).toBe(true);
    await edus.handle({ origin: THERE, edu_type: 'm.typing', content: { room_id: ROOM, user_id: bob, typing: false } });
    expect((await typing.typingIn([ROOM])).get(ROOM)).toBeUndefined();
  });

  it('m.receipt: stored for the latest known event, threads kept; foreign users and unknown events dropped', async () => {
    await edus.handle({
      origin: THERE,
      edu_type: 'm.receipt',
      content: {
        [ROOM]: {
          'm.read': {
            [bob]: { event_ids: ['$m1', '$m2', '$unknown'], data: { ts: 5 } },
            [alice]: { event_ids: ['$m2'], data: { ts: 5 } },
          },
        },
      },
    });
    const changes = await receipts.changes([ROOM], alice, 0, Number.MAX_SAFE_INTEGER);
    const records = changes.get(ROOM) ?? [];
    expect(records.map((r) => [r.user_id, r.event_id, r.receipt_type, r.ts])).toEqual([[bob, '$m2', 'm.read', 5]]);
    await edus.handle({ origin: THERE, edu_type: 'm.receipt', content: { [ROOM]: { 'm.read': { [bob]: { event_ids: ['$nope'], data: {} } } } } });
    await edus.handle({ origin: THERE, edu_type: 'm.receipt', content: { [ROOM]: { 'm.read': { [bob]: 'bad' } } } });
    expect((await receipts.changes([ROOM], alice, 0, Number.MAX_SAFE_INTEGER)).get(ROOM)).toHaveLength(1);
  });

  it('m.presence: users sharing a room get the update with last_active_ago; others and bad states are dropped', async () => {
    await edus.handle({ origin: THERE, edu_type: 'm.presence', content: { push: [{ user_id: bob, presence: 'online', last_active_ago: 5000, status_msg: 'hi', currently_active: true }] } });
    const got = await presence.get(bob);
    expect(got).toMatchObject({ presence: 'online', status_msg: 'hi' });
    expect(got?.last_active_ago).toBeGreaterThanOrEqual(5000);
    await settle();
    expect(wakes.some((w) => w.stream === 'presence' && w.user_ids?.includes(alice))).toBe(true);
    await edus.handle({ origin: THERE, edu_type: 'm.presence', content: { push: [{ user_id: `@stranger:${THERE}`, presence: 'online', last_active_ago: 0 }] } });
    await edus.handle({ origin: THERE, edu_type: 'm.presence', content: { push: [{ user_id: bob, presence: 'dancing', last_active_ago: 0 }] } });
    await edus.handle({ origin: 'evil.test', edu_type: 'm.presence', content: { push: [{ user_id: bob, presence: 'offline', last_active_ago: 0 }] } });
    expect(await presence.get(`@stranger:${THERE}`)).toBeNull();
    expect((await presence.get(bob))?.presence).toBe('online');
  });

  it('m.direct_to_device: delivered to the named and "*" devices of local users, once per message_id', async () => {
    const content = { sender: bob, type: 'm.room_key_request', message_id: 'abc', messages: { [alice]: { '*': { n: 1 } }, [`@zed:${THERE}`]: { X: { n: 2 } } } };
    await edus.handle({ origin: THERE, edu_type: 'm.direct_to_device', content });
    await edus.handle({ origin: THERE, edu_type: 'm.direct_to_device', content });
    await edus.handle({ origin: 'evil.test', edu_type: 'm.direct_to_device', content: { ...content, message_id: 'other' } });
    const phone = await toDevice.deliver(alice, 'PHONE', 0, Number.MAX_SAFE_INTEGER);
    const laptop = await toDevice.deliver(alice, 'LAPTOP', 0, Number.MAX_SAFE_INTEGER);
    expect(phone).toEqual([{ sender: bob, type: 'm.room_key_request', content: { n: 1 } }]);
    expect(laptop).toEqual([{ sender: bob, type: 'm.room_key_request', content: { n: 1 } }]);
    await settle();
    expect(wakes.some((w) => w.stream === 'to_device' && w.user_ids?.includes(alice))).toBe(true);
  });

  it('unknown EDU types and malformed contents do not throw', async () => {
    await expect(edus.handle({ origin: THERE, edu_type: 'org.example.custom', content: { a: 1 } })).resolves.toBeUndefined();
    await expect(edus.handle({ origin: THERE, edu_type: 'm.receipt', content: { [ROOM]: 'x' } })).resolves.toBeUndefined();
    await expect(edus.handle({ origin: THERE, edu_type: 'm.direct_to_device', content: { sender: bob } })).resolves.toBeUndefined();
  });
});
