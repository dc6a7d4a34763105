import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus } from '@atrium/bus';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import type { StreamPositions, SyncSectionRequest } from '../sync/sync-sections';
import { EphemeralSyncSection, ReceiptsStreamSection } from './ephemeral-sync-sections';
import { EphemeralStores } from './ephemeral.stores';

/**
 * The typing and receipts /sync sections called as /sync calls them, over
 * real SQLite storage and the in-process bus: positions, initial and
 * incremental responses, private receipts, the ephemeral filter.
 */
describe('ephemeral /sync sections', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atrium-ephemeral-sections-'));
  let store: DocumentStore;
  let bus: InProcessBus;
  let stores: EphemeralStores;
  let typingSection: EphemeralSyncSection;
  let receiptsSection: ReceiptsStreamSection;
  const room = '!room:test';
  const other = '!other:test';
  const wakes: unknown[] = [];

  beforeAll(async () => {
    store = await openDocumentStore(`sqlite:${join(dir, 'sections.db')}`);
    bus = new InProcessBus();
    await bus.subscribe('sync.wake', (message) => void wakes.push(message.data));
    stores = await EphemeralStores.shared(store, bus);
    typingSection = new EphemeralSyncSection(store, bus);
    receiptsSection = new ReceiptsStreamSection(store, bus);
    for (const user of ['@a:test', '@b:test', '@c:test']) await member(user, 'join');
  });

  let memberEvents = 0;
  /** Records a membership as the room server does (only the membership row matters here). */
  async function member(userId: string, membership: 'join' | 'leave'): Promise<void> {
    memberEvents++;
    const event = {
      event_id: `$member${memberEvents}`,
      room_id: room,
      type: 'm.room.member',
      state_key: userId,
      sender: userId,
      content: { membership },
      origin_server_ts: memberEvents,
      depth: memberEvents,
      prev_events: [],
      auth_events: [],
      hashes: { sha256: 'x' },
      signatures: {},
    };
    await stores.rooms.setMembership(event, memberEvents);
  }
  afterAll(async () => {
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function positions(): Promise<StreamPositions> {
    return {
      events: 0,
      account_data: 0,
      to_device: 0,
      presence: 0,
      receipts: await receiptsSection.currentPosition(),
      typing: await typingSection.currentPosition(),
      device_lists: 0,
    };
  }

  function request(userId: string, from: StreamPositions | null, to: StreamPositions, extra: Partial<SyncSectionRequest> = {}): SyncSectionRequest {
    const zero: StreamPositions = { events: 0, account_data: 0, to_device: 0, presence: 0, receipts: 0, typing: 0, device_lists: 0 };
    return { userId, deviceId: 'DEV', from: from ?? zero, to, fullState: from === null, initial: from === null, filter: {}, joinedRoomIds: [room], ...extra };
  }

  it('shares one set of stores per document store', async () => {
    expect(await EphemeralStores.shared(store, bus)).toBe(stores);
  });

  it('has nothing for a user with no joined rooms, and the receipts section adds no rooms itself', async () => {
    const to = await positions();
    expect(await typingSection.build(request('@a:test', null, to, { joinedRoomIds: [] }))).toEqual({ hasUpdates: false });
    expect(await receiptsSection.build()).toEqual({ hasUpdates: false });
  });

  it('builds one ephemeral list per room from both streams, initial and incremental', async () => {
    const start = await positions();
    await stores.typing.setTyping(room, '@a:test', true, 30_000);
    await stores.receipts.put({ roomId: room, userId: '@b:test', type: 'm.read', eventId: '$e1', eventStream: 1 });
    await stores.receipts.put({ roomId: room, userId: '@b:test', type: 'm.read.private', eventId: '$e1', eventStream: 1 });
    await stores.receipts.put({ roomId: other, userId: '@b:test', type: 'm.read', eventId: '$x', eventStream: 2 });
    // notify is fire-and-forget: let the in-process bus deliver.
    for (let i = 0; i < 50 && wakes.length < 4; i++) await new Promise((resolve) => setTimeout(resolve, 10));
    expect(wakes).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ stream: 'typing', room_id: room }),
        expect.objectContaining({ stream: 'receipts', room_id: room }),
        expect.objectContaining({ stream: 'receipts', user_ids: ['@b:test'] }),
      ]),
    );
    const to = await positions();
    expect(to.typing).toBeGreaterThan(start.typing);
    expect(to.receipts).toBeGreaterThan(start.receipts);

    // @a's initial sync: the typing list and @b's public receipt only.
    const initial = await typingSection.build(request('@a:test', null, to));
    expect(initial.hasUpdates).toBe(true);
    expect(initial.rooms).toEqual({
      [room]: {
        ephemeral: {
          events: [
            { type: 'm.typing', content: { user_ids: ['@a:test'] } },
            { type: 'm.receipt', content: { $e1: { 'm.read': { '@b:test': { ts: expect.any(Number) } } } } },
          ],
        },
      },
    });
    // @b sees their own private receipt.
    const own = await typingSection.build(request('@b:test', null, to));
    expect(JSON.stringify(own.rooms)).toContain('m.read.private');

    // Incremental from `to`: nothing new.
    expect(await typingSection.build(request('@a:test', to, to))).toEqual({ rooms: {}, hasUpdates: false });

    // A stop: the room's list is sent again, empty; receipts unchanged are not repeated.
    await stores.typing.setTyping(room, '@a:test', false);
    const later = await positions();
    const delta = await typingSection.build(request('@a:test', to, later));
    expect(delta).toEqual({ rooms: { [room]: { ephemeral: { events: [{ type: 'm.typing', content: { user_ids: [] } }] } } }, hasUpdates: true });
  });

  it('applies the room ephemeral filter', async () => {
    await stores.typing.setTyping(room, '@c:test', true, 30_000);
    const to = await positions();
    const onlyTyping = await typingSection.build(request('@a:test', null, to, { filter: { room: { ephemeral: { types: ['m.typing'] } } } }));
    expect(onlyTyping.rooms?.[room]).toEqual({ ephemeral: { events: [{ type: 'm.typing', content: { user_ids: ['@c:test'] } }] } });
    const none = await typingSection.build(request('@a:test', null, to, { filter: { room: { ephemeral: { not_types: ['*'] } } } }));
    expect(none).toEqual({ rooms: {}, hasUpdates: false });
  });

  it('lists only typing users still joined', async () => {
    await stores.typing.setTyping(room, '@b:test', true, 30_000);
    const from = await positions();
    await member('@c:test', 'leave');
    await stores.typing.setTyping(room, '@b:test', false);
    const to = await positions();
    // @c left while typing: not listed, though their typing state has not run out.
    expect((await typingSection.build(request('@a:test', from, to))).rooms?.[room]).toEqual({ ephemeral: { events: [{ type: 'm.typing', content: { user_ids: [] } }] } });
    // An initial sync does not list a room where nobody joined types.
    expect(JSON.stringify((await typingSection.build(request('@a:test', null, to))).rooms)).not.toContain('m.typing');
  });
});
