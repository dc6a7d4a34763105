import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamAllocator } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { AccountDataStore } from './account-data-store';
import { IDLE_TIMEOUT_MS, INACTIVE_ANNOUNCE_MS, PresenceStore } from './presence-store';
import { ProfileStore } from './profile-store';
import type { SyncWake } from './streams';
import { TO_DEVICE_TXN_RETENTION_MS, ToDeviceStore } from './to-device-store';

describe('user-data stores (on the SQLite adapter)', () => {
  let dir: string;
  let store: DocumentStore;
  let positions: StreamAllocator;
  let wakes: SyncWake[];
  let now = 1_000_000;
  const wake = async (message: SyncWake): Promise<void> => {
    wakes.push(message);
  };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-user-data-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    positions = await StreamAllocator.open(store, () => now);
    wakes = [];
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe('AccountDataStore', () => {
    it('keeps client JSON (dotted keys, nested arrays), global apart from per room, and wakes sync', async () => {
      const data = await AccountDataStore.open(store, positions, wake);
      const p1 = await data.set('@a:x', null, 'org.example', { 'm.dotted.key': [1, [2, { z: null }]] });
      const p2 = await data.set('@a:x', '!r:x', 'org.example', { room: true });
      expect(p2).toBeGreaterThan(p1);
      expect(await data.get('@a:x', null, 'org.example')).toEqual({ 'm.dotted.key': [1, [2, { z: null }]] });
      expect(await data.get('@a:x', '!r:x', 'org.example')).toEqual({ room: true });
      expect(await data.get('@a:x', '!other:x', 'org.example')).toBeNull();
      expect(wakes).toEqual([
        { stream: 'account_data', position: p1, user_ids: ['@a:x'] },
        { stream: 'account_data', position: p2, user_ids: ['@a:x'] },
      ]);
      expect(await data.safePosition()).toBe(p2);
    });

    it('reports what changed in (from, to], latest content once per type', async () => {
      const data = await AccountDataStore.open(store, positions, wake);
      const p1 = await data.set('@a:x', null, 't.one', { v: 1 });
      await data.set('@a:x', null, 't.two', { v: 2 });
      await data.set('@b:x', null, 't.one', { other: true });
      const p4 = await data.set('@a:x', null, 't.one', { v: 3 });
      await data.setTag('@a:x', '!r:x', 'u.work', {});
      expect(await data.changes('@a:x', 0, p4)).toEqual({ global: [{ type: 't.two', content: { v: 2 } }, { type: 't.one', content: { v: 3 } }], rooms: {} });
      expect(await data.changes('@a:x', p1, p1)).toEqual({ global: [], rooms: {} });
      const all = await data.changes('@a:x', p4, await data.safePosition());
      expect(all.rooms).toEqual({ '!r:x': [{ type: 'm.tag', content: { tags: { 'u.work': {} } } }] });
    });

    it('never loses a tag to a concurrent tag write (compare-and-set on m.tag)', async () => {
      const data = await AccountDataStore.open(store, positions, wake);
      const names = Array.from({ length: 10 }, (_, i) => `u.t${i}`);
      await Promise.all(names.map((name) => data.setTag('@a:x', '!r:x', name, { order: 0.5 })));
      expect(Object.keys(await data.getTags('@a:x', '!r:x')).sort()).toEqual(names);
      const before = wakes.length;
      await data.deleteTag('@a:x', '!r:x', 'u.absent');
      expect(wakes.length).toBe(before);
      await data.deleteTag('@a:x', '!r:x', 'u.t0');
      expect(Object.keys(await data.getTags('@a:x', '!r:x'))).not.toContain('u.t0');
    });
  });

  describe('ProfileStore', () => {
    it('returns {} for no profile, applies changes, and extracts displayname/avatar_url', async () => {
      const profiles = await ProfileStore.open(store, () => now);
      expect(await profiles.get('@a:x')).toEqual({});
      const first = await profiles.update('@a:x', (f) => ({ ...f, displayname: 'A' }));
      expect(first).toEqual({ before: {}, after: { displayname: 'A' } });
      await Promise.all(['k.one', 'k.two', 'k.three'].map((key) => profiles.update('@a:x', (f) => ({ ...f, [key]: true }))));
      expect(await profiles.get('@a:x')).toEqual({ displayname: 'A', 'k.one': true, 'k.two': true, 'k.three': true });
      expect(await profiles.memberFields('@a:x')).toEqual({ displayname: 'A' });
      await profiles.update('@a:x', (f) => ({ ...f, avatar_url: 'mxc://x/y', displayname: '' }));
      expect(await profiles.memberFields('@a:x')).toEqual({ avatar_url: 'mxc://x/y' });
      expect(await profiles.memberFields('@nobody:x')).toEqual({});
    });

    it('stores nothing when the change throws', async () => {
      const profiles = await ProfileStore.open(store, () => now);
      await expect(
        profiles.update('@a:x', () => {
          throw new Error('too large');
        }),
      ).rejects.toThrow('too large');
      expect(await profiles.get('@a:x')).toEqual({});
    });
  });

  describe('PresenceStore', () => {
    it('sets presence, keeps the status message, and turns idle online users unavailable', async () => {
      const presence = await PresenceStore.open(store, positions, wake, () => now);
      expect(await presence.get('@a:x')).toBeNull();
      const p1 = await presence.set('@a:x', 'online', 'busy', ['@b:x']);
      expect(await presence.get('@a:x')).toEqual({ presence: 'online', last_active_ago: 0, status_msg: 'busy', currently_active: true });
      expect(wakes.at(-1)).toEqual({ stream: 'presence', position: p1, user_ids: ['@a:x', '@b:x'] });
      now += IDLE_TIMEOUT_MS + 1;
      expect(await presence.get('@a:x')).toMatchObject({ presence: 'unavailable', currently_active: false, status_msg: 'busy' });
      await presence.set('@a:x', 'offline', undefined, []);
      expect(await presence.get('@a:x')).toMatchObject({ presence: 'offline', status_msg: 'busy' });
    });

    it('announces an online user going inactive, then idle, once each, and never over fresh activity', async () => {
      const presence = await PresenceStore.open(store, positions, wake, () => now);
      const audience = async (userId: string): Promise<string[]> => (userId === '@a:x' ? ['@b:x'] : []);
      const p1 = await presence.set('@a:x', 'online', null, []);
      await presence.set('@c:x', 'offline', null, []);
      expect(await presence.announceInactivity(audience)).toBe(0);

      now += INACTIVE_ANNOUNCE_MS + 1;
      expect(await presence.announceInactivity(audience)).toBe(1);
      expect(wakes.at(-1)).toEqual({ stream: 'presence', position: expect.any(Number), user_ids: ['@a:x', '@b:x'] });
      const p2 = wakes.at(-1)!.position;
      expect((await presence.changes(['@a:x'], p1, p2)).map((c) => c.content)).toEqual([
        { presence: 'online', last_active_ago: INACTIVE_ANNOUNCE_MS + 1, currently_active: false },
      ]);
      expect(await presence.announceInactivity(audience)).toBe(0);

      now += IDLE_TIMEOUT_MS;
      expect(await presence.announceInactivity(audience)).toBe(1);
      const p3 = wakes.at(-1)!.position;
      expect((await presence.changes(['@a:x'], p2, p3)).map((c) => c.content)).toMatchObject([{ presence: 'unavailable', currently_active: false }]);
      expect(await presence.announceInactivity(audience)).toBe(0);

      // Fresh activity starts over: active, nothing to announce.
      await presence.syncActivity('@a:x', 'online', async () => []);
      expect(await presence.announceInactivity(audience)).toBe(0);
      expect(await presence.get('@a:x')).toMatchObject({ presence: 'online', currently_active: true });
    });

    it('bumps the last active time on other activity, turns unavailable online, leaves offline and unknown users, and writes at most once a minute', async () => {
      const presence = await PresenceStore.open(store, positions, wake, () => now);
      const audience = async (): Promise<string[]> => ['@b:x'];
      await presence.set('@a:x', 'unavailable', null, []);
      now += 10_000;
      expect(await presence.bumpActivity('@a:x', audience)).toEqual(expect.any(Number));
      expect(await presence.get('@a:x')).toMatchObject({ presence: 'online', last_active_ago: 0, currently_active: true });
      now += 10_000;
      expect(await presence.bumpActivity('@a:x', audience)).toBeNull();
      expect(await presence.get('@a:x')).toMatchObject({ last_active_ago: 10_000 });
      now += 61_000;
      expect(await presence.bumpActivity('@a:x', audience)).toEqual(expect.any(Number));
      expect(wakes.at(-1)?.user_ids).toEqual(['@a:x', '@b:x']);

      await presence.set('@c:x', 'offline', null, []);
      now += 61_000;
      expect(await presence.bumpActivity('@c:x', audience)).toBeNull();
      expect(await presence.get('@c:x')).toMatchObject({ presence: 'offline', last_active_ago: 61_000 });
      expect(await presence.bumpActivity('@never:x', audience)).toBeNull();
      expect(await presence.get('@never:x')).toBeNull();
    });

    it('marks a syncing user online only when something changes', async () => {
      const presence = await PresenceStore.open(store, positions, wake, () => now);
      const audience = async (): Promise<string[]> => ['@b:x'];
      expect(await presence.syncActivity('@a:x', 'online', audience)).toEqual(expect.any(Number));
      expect(await presence.syncActivity('@a:x', 'online', audience)).toBeNull();
      now += 61_000;
      expect(await presence.syncActivity('@a:x', 'online', audience)).toEqual(expect.any(Number));
      expect(await presence.get('@a:x')).toMatchObject({ presence: 'online', last_active_ago: 0, currently_active: true });
      expect(await presence.syncActivity('@a:x', 'unavailable', audience)).toEqual(expect.any(Number));
      expect(await presence.syncActivity('@a:x', 'unavailable', audience)).toBeNull();
      expect(wakes.at(-1)?.user_ids).toEqual(['@a:x', '@b:x']);
    });

    it('lists changes of the given users in (from, to]', async () => {
      const presence = await PresenceStore.open(store, positions, wake, () => now);
      const p1 = await presence.set('@a:x', 'online', null, []);
      const p2 = await presence.set('@b:x', 'online', null, []);
      await presence.set('@c:x', 'online', null, []);
      const p4 = await presence.touch('@a:x', []);
      expect((await presence.changes(['@a:x', '@b:x'], 0, p4)).map((c) => c.userId)).toEqual(['@b:x', '@a:x']);
      expect((await presence.changes(['@a:x', '@b:x'], p1, p2)).map((c) => c.userId)).toEqual(['@b:x']);
      expect(await presence.changes([], 0, p4)).toEqual([]);
    });
  });

  describe('ToDeviceStore', () => {
    it('peek answers batches after a position without deleting or marking (MSC3814 dehydrated device events)', async () => {
      const toDevice = await ToDeviceStore.open(store, positions, wake, () => now);
      for (const n of [1, 2, 3]) await toDevice.send('@a:x', 'ADEV', `p${n}`, 'm.test', [{ userId: '@b:x', deviceId: 'DEHY', content: { n } }]);
      const first = await toDevice.peek('@b:x', 'DEHY', 0, 2);
      expect(first.events.map((e) => e.content)).toEqual([{ n: 1 }, { n: 2 }]);
      const second = await toDevice.peek('@b:x', 'DEHY', first.last, 2);
      expect(second.events.map((e) => e.content)).toEqual([{ n: 3 }]);
      expect(await toDevice.peek('@b:x', 'DEHY', second.last, 2)).toEqual({ events: [], last: second.last });
      expect(await toDevice.pendingCount('@b:x', 'DEHY')).toBe(3);
      expect((await toDevice.peek('@b:x', 'DEHY', 0)).events).toHaveLength(3);
    });

    it('delivers in order, once per transaction, and deletes what a later token confirms', async () => {
      const toDevice = await ToDeviceStore.open(store, positions, wake, () => now);
      expect(await toDevice.send('@a:x', 'ADEV', 't1', 'm.test', [{ userId: '@b:x', deviceId: 'BDEV', content: { n: 1 } }])).toBe(true);
      expect(await toDevice.send('@a:x', 'ADEV', 't1', 'm.test', [{ userId: '@b:x', deviceId: 'BDEV', content: { n: 1 } }])).toBe(false);
      await toDevice.send('@a:x', 'ADEV', 't2', 'm.test', [
        { userId: '@b:x', deviceId: 'BDEV', content: { n: 2 } },
        { userId: '@b:x', deviceId: 'OTHER', content: { n: 2 } },
      ]);
      const t1 = await toDevice.safePosition();
      expect(await toDevice.deliver('@b:x', 'BDEV', 0, t1)).toEqual([
        { sender: '@a:x', type: 'm.test', content: { n: 1 } },
        { sender: '@a:x', type: 'm.test', content: { n: 2 } },
      ]);
      // The same since token again: nothing confirmed yet, the same messages.
      expect(await toDevice.deliver('@b:x', 'BDEV', 0, t1)).toHaveLength(2);
      // A token at t1 confirms them: deleted, for this device only.
      expect(await toDevice.deliver('@b:x', 'BDEV', t1, t1)).toEqual([]);
      expect(await toDevice.pendingCount('@b:x', 'BDEV')).toBe(0);
      expect(await toDevice.pendingCount('@b:x', 'OTHER')).toBe(1);
      // A retry after delivery and deletion is still recognised.
      expect(await toDevice.send('@a:x', 'ADEV', 't1', 'm.test', [{ userId: '@b:x', deviceId: 'BDEV', content: { n: 1 } }])).toBe(false);
      expect(wakes.filter((w) => w.stream === 'to_device')).toHaveLength(2);
    });

    it('keeps a message handed out in a response until a token at or past that response confirms it', async () => {
      const toDevice = await ToDeviceStore.open(store, positions, wake, () => now);
      await toDevice.send('@a:x', 'ADEV', 'x1', 'm.test', [{ userId: '@b:x', deviceId: 'BDEV', content: { n: 1 } }]);
      const t1 = await toDevice.safePosition();
      expect(await toDevice.deliver('@b:x', 'BDEV', 0, t1)).toHaveLength(1);
      await toDevice.send('@a:x', 'ADEV', 'x2', 'm.test', [{ userId: '@b:x', deviceId: 'BDEV', content: { n: 2 } }]);
      const t2 = await toDevice.safePosition();
      // A retry with the old token at t2 hands out both; the first keeps its mark (t1).
      expect((await toDevice.deliver('@b:x', 'BDEV', 0, t2)).map((e) => e.content.n)).toEqual([1, 2]);
      // Coming back with t1 confirms only the first response's message.
      expect((await toDevice.deliver('@b:x', 'BDEV', t1, t2)).map((e) => e.content.n)).toEqual([2]);
      expect(await toDevice.deliver('@b:x', 'BDEV', t2, t2)).toEqual([]);
    });

    it('hands out at most the limit per response and loses none beyond it', async () => {
      const toDevice = await ToDeviceStore.open(store, positions, wake, () => now);
      for (let i = 0; i < 5; i++) await toDevice.send('@a:x', 'ADEV', `t${i}`, 'm.test', [{ userId: '@b:x', deviceId: 'BDEV', content: { i } }]);
      const to = await toDevice.safePosition();
      expect((await toDevice.deliver('@b:x', 'BDEV', 0, to, 3)).map((e) => e.content.i)).toEqual([0, 1, 2]);
      // The next token is `to`, past every message's position: only the three sent are confirmed.
      expect((await toDevice.deliver('@b:x', 'BDEV', to, to, 3)).map((e) => e.content.i)).toEqual([3, 4]);
      expect(await toDevice.deliver('@b:x', 'BDEV', to, to, 3)).toEqual([]);
    });

    it('forgets sending transactions after the retention period', async () => {
      const toDevice = await ToDeviceStore.open(store, positions, wake, () => now);
      const message = [{ userId: '@b:x', deviceId: 'BDEV', content: {} }];
      await toDevice.send('@a:x', 'ADEV', 'old', 'm.test', message);
      now += TO_DEVICE_TXN_RETENTION_MS + 1;
      await toDevice.send('@a:x', 'ADEV', 'new', 'm.test', message);
      expect(await toDevice.pruneTransactions(true)).toBe(0);
      // The old transaction is forgotten: a (very late) retry is delivered again; the new one is still known.
      expect(await toDevice.send('@a:x', 'ADEV', 'old', 'm.test', message)).toBe(true);
      expect(await toDevice.send('@a:x', 'ADEV', 'new', 'm.test', message)).toBe(false);
    });
  });
});
