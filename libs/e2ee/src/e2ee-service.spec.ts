import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccountStore } from '@atrium/accounts';
import { InProcessBus } from '@atrium/bus';
import { MatrixError } from '@atrium/http';
import { generateSigningKey, signJson, type RoomEvent } from '@atrium/matrix';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { E2eeService } from './e2ee-service';

/** E2eeService over a real SQLite store, the in-process bus and the real account and room stores. */
describe('E2eeService', () => {
  let dir: string;
  let store: DocumentStore;
  let bus: InProcessBus;
  let accounts: AccountStore;
  let service: E2eeService;
  const wakes: unknown[] = [];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-e2ee-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    bus = new InProcessBus();
    await bus.subscribe('sync.wake', (m) => void wakes.push(m.data));
    accounts = await AccountStore.open(store);
    service = await E2eeService.shared(store, bus, accounts, 'hs.test');
    wakes.length = 0;
  });

  afterEach(async () => {
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const deviceKeys = (userId: string, deviceId: string) => {
    const key = generateSigningKey(deviceId);
    return signJson({ user_id: userId, device_id: deviceId, algorithms: ['m.megolm.v1.aes-sha2'], keys: { [`ed25519:${deviceId}`]: key.publicKeyBase64 } }, userId, key);
  };

  async function member(roomId: string, userId: string, membership: string, stream: number): Promise<void> {
    const event = { event_id: `$${roomId}${userId}${stream}`, room_id: roomId, type: 'm.room.member', state_key: userId, sender: userId, content: { membership } } as unknown as RoomEvent;
    await service.rooms.setMembership(event, stream);
  }

  it('gives one-time keys out in the order they were uploaded (keys.yaml claimKeys, v1.13), whatever their IDs', async () => {
    await accounts.ensureDevice('@a:hs.test', 'D', null, null);
    // Three uploads whose key IDs sort against the upload order.
    for (const batch of [['zz1', 'zz2'], ['mm1'], ['aa1', 'aa2']]) {
      await service.upload('@a:hs.test', 'D', { one_time_keys: Object.fromEntries(batch.map((k) => [`signed_curve25519:${k}`, { key: k }])) });
    }
    const claimed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await service.claim({ one_time_keys: { '@a:hs.test': { D: 'signed_curve25519' } } });
      claimed.push(Object.keys((r.one_time_keys as Record<string, Record<string, object>>)['@a:hs.test']!.D!)[0].split(':')[1]);
    }
    // Keys of one upload are equivalent: their order among themselves is not fixed.
    expect([claimed.slice(0, 2).sort(), claimed[2], claimed.slice(3).sort()]).toEqual([['zz1', 'zz2'], 'mm1', ['aa1', 'aa2']]);
  });

  it('gives each one-time key to one claimer only, then the fallback key', async () => {
    await accounts.ensureDevice('@a:hs.test', 'D', null, null);
    await service.upload('@a:hs.test', 'D', { one_time_keys: { 'signed_curve25519:1': { key: 'k1' } }, fallback_keys: { 'signed_curve25519:F': { key: 'f' } } });
    const claim = () => service.claim({ one_time_keys: { '@a:hs.test': { D: 'signed_curve25519' } } });
    const results = await Promise.all([claim(), claim(), claim()]);
    const ids = results.map((r) => Object.keys((r.one_time_keys as Record<string, Record<string, object>>)['@a:hs.test']!.D!)[0]).sort();
    expect(ids).toEqual(['signed_curve25519:1', 'signed_curve25519:F', 'signed_curve25519:F']);
    expect(await service.store.unusedFallbackKeyTypes('@a:hs.test', 'D')).toEqual([]);
    // The same fallback key again keeps its `used` mark; a new one is unused.
    await service.upload('@a:hs.test', 'D', { fallback_keys: { 'signed_curve25519:F': { key: 'f' } } });
    expect(await service.store.unusedFallbackKeyTypes('@a:hs.test', 'D')).toEqual([]);
    await service.upload('@a:hs.test', 'D', { fallback_keys: { 'signed_curve25519:G': { key: 'g' } } });
    expect(await service.store.unusedFallbackKeyTypes('@a:hs.test', 'D')).toEqual(['signed_curve25519']);
  });

  it('refuses a whole upload when one key ID is re-used with other content', async () => {
    await service.upload('@a:hs.test', 'D', { one_time_keys: { 'signed_curve25519:1': { key: 'k1' } } });
    const upload = service.upload('@a:hs.test', 'D', { device_keys: deviceKeys('@a:hs.test', 'D'), one_time_keys: { 'signed_curve25519:2': { key: 'k2' }, 'signed_curve25519:1': { key: 'other' } } });
    await expect(upload).rejects.toMatchObject({ status: 400, errcode: 'M_INVALID_PARAM' });
    expect(await service.store.oneTimeKeyCounts('@a:hs.test', 'D')).toEqual({ signed_curve25519: 1 });
    expect(await service.store.getDeviceKeys('@a:hs.test', 'D')).toBeNull();
  });

  it('refuses device keys of another device or with a bad signature', async () => {
    await expect(service.upload('@a:hs.test', 'D', { device_keys: deviceKeys('@a:hs.test', 'E') })).rejects.toBeInstanceOf(MatrixError);
    const forged = { ...deviceKeys('@a:hs.test', 'D'), keys: { 'ed25519:D': generateSigningKey('D').publicKeyBase64 } };
    await expect(service.upload('@a:hs.test', 'D', { device_keys: forged })).rejects.toMatchObject({ status: 400 });
  });

  it('reports key changes of users sharing a room, and left once none is shared', async () => {
    await member('!r', '@a:hs.test', 'join', 1);
    await member('!r', '@b:hs.test', 'join', 2);
    await service.upload('@b:hs.test', 'B', { device_keys: deviceKeys('@b:hs.test', 'B') });
    const to = { events: 2, deviceLists: await service.store.safePosition() };
    expect((await service.deviceListDelta('@a:hs.test', { events: 2, deviceLists: 0 }, to)).changed).toEqual(['@b:hs.test']);
    await new Promise((r) => setTimeout(r, 20)); // bus notifications are delivered asynchronously
    expect(wakes).toEqual([expect.objectContaining({ stream: 'device_lists', user_ids: expect.arrayContaining(['@a:hs.test', '@b:hs.test']) })]);
    // A stranger's change is not reported.
    await service.upload('@c:hs.test', 'C', { device_keys: deviceKeys('@c:hs.test', 'C') });
    const to2 = { events: 2, deviceLists: await service.store.safePosition() };
    expect((await service.deviceListDelta('@a:hs.test', to, to2)).changed).toEqual([]);
    // A leaves the only shared room: B is `left`.
    await member('!r', '@a:hs.test', 'leave', 3);
    expect(await service.deviceListDelta('@a:hs.test', { events: 2, deviceLists: to2.deviceLists }, { events: 3, deviceLists: to2.deviceLists })).toEqual({ changed: [], left: ['@b:hs.test'] });
  });

  it('reads changes past the listing limit user by user', async () => {
    const before = await service.store.safePosition();
    for (const user of ['@x:hs.test', '@y:hs.test', '@z:hs.test']) await service.store.markChanged(user);
    const after = await service.store.safePosition();
    expect(await service.store.changedBetween(before, after, 2)).toBeNull();
    expect([...(await service.store.changedBetween(before, after, 3))!].sort()).toEqual(['@x:hs.test', '@y:hs.test', '@z:hs.test']);
    expect([...(await service.store.changedAmong(['@y:hs.test', '@q:hs.test'], before, after))]).toEqual(['@y:hs.test']);
  });

  it('keeps the better backed-up key and answers the wrong version with 403', async () => {
    const { version } = await service.createBackup('@a:hs.test', { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: {} });
    const data = (fmi: number, verified: boolean, tag: string) => ({ first_message_index: fmi, forwarded_count: 0, is_verified: verified, session_data: { tag } });
    const first = await service.putBackupKeys('@a:hs.test', version, { '!r': { s: data(3, false, 'a') } });
    const worse = await service.putBackupKeys('@a:hs.test', version, { '!r': { s: data(4, false, 'b') } });
    expect(worse.etag).toBe(first.etag);
    await service.putBackupKeys('@a:hs.test', version, { '!r': { s: data(9, true, 'c') } });
    expect(await service.getBackupKeys('@a:hs.test', version, '!r', 's')).toMatchObject({ session_data: { tag: 'c' } });
    await expect(service.putBackupKeys('@a:hs.test', 'nope', {})).rejects.toMatchObject({ status: 403, errcode: 'M_WRONG_ROOM_KEYS_VERSION', extra: { current_version: version } });
  });

  it('deletes a backup version again without an error, and answers 404 for one that never existed (key_backup.yaml)', async () => {
    const { version } = await service.createBackup('@a:hs.test', { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: {} });
    await service.deleteBackup('@a:hs.test', version);
    await service.deleteBackup('@a:hs.test', version);
    await expect(service.getBackup('@a:hs.test', version)).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
    // Another user's version, and one never created, are unknown.
    await expect(service.deleteBackup('@b:hs.test', version)).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
    await expect(service.deleteBackup('@a:hs.test', '987654321')).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
  });
});
