import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InProcessBus, type Bus } from '@atrium/bus';
import { MemoryCache } from '@atrium/cache';
import { MatrixError, RateLimiter, type Requester } from '@atrium/http';
import type { JsonObject, RoomEvent } from '@atrium/matrix';
import { EVENTS_STREAM, RoomStore } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { ProfileStore } from '@atrium/user-data';
import { UserDirectoryIndexer } from './user-directory-indexer';
import { UserDirectoryController } from './user-directory.controller';
import { UserDirectoryService } from './user-directory.service';
import { UserDirectoryStore } from './user-directory-store';

/**
 * The search over a real RoomStore and index on SQLite, with events written
 * as the room server writes them and two indexers (two client-api replicas)
 * sharing the index.
 */
describe('UserDirectoryService (SQLite, two indexers)', () => {
  let dir: string;
  let store: DocumentStore;
  let rooms: RoomStore;
  let bus: Bus;
  let indexers: UserDirectoryIndexer[];
  let services: UserDirectoryService[];
  let counter = 0;

  function ev(roomId: string, type: string, sender: string, content: JsonObject, stateKey?: string): RoomEvent {
    counter++;
    const e: RoomEvent = {
      event_id: `$e${counter}`,
      room_id: roomId,
      type,
      sender,
      content,
      origin_server_ts: 1000 + counter,
      depth: counter,
      prev_events: [],
      auth_events: [],
      hashes: { sha256: 'x' },
      signatures: {},
    };
    if (stateKey !== undefined) e.state_key = stateKey;
    return e;
  }

  async function write(e: RoomEvent): Promise<void> {
    await rooms.streams.withPosition(EVENTS_STREAM, async (stream) => {
      await rooms.insertEvent({ event: e, stream });
      if (e.state_key !== undefined) await rooms.setCurrentState(e, stream);
      if (e.type === 'm.room.member') await rooms.setMembership(e, stream);
    });
  }

  const member = (roomId: string, userId: string, membership: string, displayname?: string): Promise<void> =>
    write(ev(roomId, 'm.room.member', userId, displayname === undefined ? { membership } : { membership, displayname }, userId));

  async function room(roomId: string, joinRule: string, visibility: 'public' | 'private' = 'private'): Promise<void> {
    await rooms.createRoom({ roomId, version: '12', creator: '@owner:x', visibility });
    await write(ev(roomId, 'm.room.join_rules', '@owner:x', { join_rule: joinRule }, ''));
  }

  const ids = (r: { results: Array<{ user_id: string }> }): string[] => r.results.map((u) => u.user_id).sort();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-user-directory-service-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    rooms = await RoomStore.open(store);
    bus = new InProcessBus();
    const directory = await UserDirectoryStore.open(store);
    const profiles = await ProfileStore.open(store);
    indexers = [new UserDirectoryIndexer(rooms, directory, bus), new UserDirectoryIndexer(rooms, directory, bus)];
    services = indexers.map((indexer) => new UserDirectoryService(rooms, profiles, directory, indexer));
  });

  afterAll(async () => {
    for (const indexer of indexers) await indexer.onModuleDestroy();
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds users sharing a room or in public rooms, follows leaves and renames, through either replica', async () => {
    await room('!private:x', 'invite');
    await room('!public:x', 'public');
    await room('!listed:x', 'invite', 'public');
    await room('!other:x', 'invite');
    await member('!private:x', '@me:x', 'join');
    await member('!private:x', '@friend:x', 'join', 'Walrus Friend');
    await member('!public:x', '@stranger:x', 'join', 'Walrus Stranger');
    await member('!listed:x', '@listed:x', 'join', 'Walrus Listed');
    await member('!other:x', '@hidden:x', 'join', 'Walrus Hidden');
    await member('!other:x', '@invited:x', 'invite', 'Walrus Invited');

    // Both indexers race over the same log; either service answers the same.
    await Promise.all(indexers.map((i) => i.drain()));
    for (const service of services) {
      expect(ids(await service.search('@me:x', 'walrus', 10))).toEqual(['@friend:x', '@listed:x', '@stranger:x']);
    }
    // Sharing a room ranks first.
    expect((await services[0].search('@me:x', 'WALRUS', 10)).results[0]).toEqual({ user_id: '@friend:x', display_name: 'Walrus Friend' });

    await member('!private:x', '@friend:x', 'join', 'Renamed Pal');
    await member('!public:x', '@stranger:x', 'leave');
    // The search catches up with the log itself (no drain by the test).
    expect(ids(await services[1].search('@me:x', 'walrus', 10))).toEqual(['@listed:x']);
    expect(ids(await services[0].search('@me:x', 'pal ren', 10))).toEqual(['@friend:x']);

    // The room's join rule turns private: its members are no longer visible to strangers.
    await member('!public:x', '@stranger:x', 'join', 'Walrus Stranger');
    expect(ids(await services[0].search('@me:x', 'walrus', 10))).toEqual(['@listed:x', '@stranger:x']);
    await write(ev('!public:x', 'm.room.join_rules', '@owner:x', { join_rule: 'invite' }, ''));
    expect(ids(await services[1].search('@me:x', 'walrus', 10))).toEqual(['@listed:x']);
  });

  it('cuts the results at the limit and says so', async () => {
    await room('!many:x', 'public');
    for (let i = 0; i < 5; i++) await member('!many:x', `@many${i}:x`, 'join', `Numerous ${i}`);
    const cut = await services[0].search('@me:x', 'numerous', 3);
    expect(cut.results).toHaveLength(3);
    expect(cut.limited).toBe(true);
    expect(await services[0].search('@me:x', 'numerous', 5)).toMatchObject({ limited: false });
    expect(await services[0].search('@me:x', 'numerous', 0)).toEqual({ results: [], limited: true });
    expect(await services[0].search('@me:x', '  ', 3)).toEqual({ results: [], limited: false });
  });

  it('answers 429 M_LIMIT_EXCEEDED past 20 searches at once by one user, when rate limits are on', async () => {
    const controller = new UserDirectoryController(services[0], new RateLimiter(new MemoryCache(), true, () => 1_000_000));
    const requester = { userId: '@eager:x', deviceId: 'D' } as Requester;
    for (let i = 0; i < 20; i++) await controller.search(requester, { search_term: 'zzz' });
    const refused = await controller.search(requester, { search_term: 'zzz' }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(MatrixError);
    expect(refused).toMatchObject({ status: 429, errcode: 'M_LIMIT_EXCEEDED' });
    // Another user is not limited by it.
    await expect(controller.search({ userId: '@calm:x', deviceId: 'D' } as Requester, { search_term: 'zzz' })).resolves.toMatchObject({ results: [] });
  });
});
