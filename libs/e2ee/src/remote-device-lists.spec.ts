import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { parseDeviceListUpdate, parseUserDevicesResponse, RemoteDeviceListStore } from './remote-device-lists';

/** The remote device list cache over a real SQLite store (server-server-api "Device Management"). */
describe('RemoteDeviceListStore', () => {
  let dir: string;
  let store: DocumentStore;
  let lists: RemoteDeviceListStore;
  const alice = '@alice:remote.test';
  const keysOf = (deviceId: string, extra: Record<string, unknown> = {}) => ({ user_id: alice, device_id: deviceId, algorithms: ['m.megolm.v1.aes-sha2'], keys: { [`ed25519:${deviceId}`]: deviceId }, ...extra });
  const master = { user_id: alice, usage: ['master'], keys: { 'ed25519:M': 'M' } };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-remote-lists-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    lists = await RemoteDeviceListStore.open(store);
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const seed = async (streamId: number) => {
    const parsed = parseUserDevicesResponse(alice, {
      user_id: alice,
      stream_id: streamId,
      devices: [{ device_id: 'D1', keys: keysOf('D1'), device_display_name: 'Phone' }, { device_id: 'D2', keys: keysOf('D2') }],
      master_key: master,
    });
    expect(parsed).not.toBeNull();
    expect(await lists.replace(alice, parsed!, await lists.beginResync(alice))).toBe(true);
  };
  const update = (content: Record<string, unknown>) => parseDeviceListUpdate('remote.test', { user_id: alice, ...content })!;

  it('answers nothing for an unknown user, and the /user/devices answer once stored', async () => {
    expect(await lists.get(alice)).toBeNull();
    await seed(5);
    const cached = await lists.get(alice);
    expect(cached).toMatchObject({ streamId: 5, masterKey: master, selfSigningKey: null });
    expect(cached!.devices.map((d) => [d.deviceId, d.displayName])).toEqual([['D1', 'Phone'], ['D2', null]]);
  });

  it('a replaced list drops devices no longer listed', async () => {
    await seed(5);
    await lists.replace(alice, parseUserDevicesResponse(alice, { user_id: alice, stream_id: 9, devices: [{ device_id: 'D2', keys: keysOf('D2') }] })!, await lists.beginResync(alice));
    const cached = await lists.get(alice);
    expect(cached!.devices.map((d) => d.deviceId)).toEqual(['D2']);
    expect(cached!.masterKey).toBeNull();
  });

  it('applies an update whose prev_id is the stored stream ID, ignores repeats, and goes stale on a gap', async () => {
    await seed(5);
    expect(await lists.applyUpdate(update({ device_id: 'D3', stream_id: 6, prev_id: [5], keys: keysOf('D3') }))).toBe('applied');
    expect((await lists.get(alice))!.devices.map((d) => d.deviceId)).toEqual(['D1', 'D2', 'D3']);
    expect(await lists.applyUpdate(update({ device_id: 'D3', stream_id: 6, prev_id: [5], keys: keysOf('D3') }))).toBe('duplicate');
    expect(await lists.applyUpdate(update({ device_id: 'D1', stream_id: 7, prev_id: [6], deleted: true }))).toBe('applied');
    expect((await lists.get(alice))!.devices.map((d) => d.deviceId)).toEqual(['D2', 'D3']);
    // prev_id 8 was never seen: "it must resynchronise its list" — stale, so the next reader fetches it.
    expect(await lists.applyUpdate(update({ device_id: 'D2', stream_id: 9, prev_id: [8], deleted: true }))).toBe('stale');
    expect(await lists.get(alice)).toBeNull();
    // While stale, updates are not applied.
    expect(await lists.applyUpdate(update({ device_id: 'D4', stream_id: 10, prev_id: [9], keys: keysOf('D4') }))).toBe('stale');
    // A fresh /user/devices answer makes it current again.
    await seed(10);
    expect((await lists.get(alice))!.streamId).toBe(10);
  });

  it('an update arriving while the list is fetched keeps the fetched answer from making the list fresh', async () => {
    const token = await lists.beginResync(alice);
    // While the fetch is under way: an update, and a reader, both find the list stale.
    expect(await lists.get(alice)).toBeNull();
    expect(await lists.applyUpdate(update({ device_id: 'D9', stream_id: 12, prev_id: [11], keys: keysOf('D9') }))).toBe('stale');
    const answer = parseUserDevicesResponse(alice, { user_id: alice, stream_id: 11, devices: [{ device_id: 'D1', keys: keysOf('D1') }] })!;
    expect(await lists.replace(alice, answer, token)).toBe(false);
    expect(await lists.get(alice)).toBeNull();
    // The next fetch, with nothing arriving meanwhile, makes it fresh.
    expect(await lists.replace(alice, answer, await lists.beginResync(alice))).toBe(true);
    expect((await lists.get(alice))!.streamId).toBe(11);
  });

  it('an update for a user with no cached list is not stored', async () => {
    expect(await lists.applyUpdate(update({ device_id: 'D1', stream_id: 1, prev_id: [], keys: keysOf('D1') }))).toBe('not-cached');
    expect(await lists.get(alice)).toBeNull();
  });

  it('signing key updates replace the cached cross-signing keys; forget drops everything', async () => {
    await seed(5);
    const newMaster = { ...master, keys: { 'ed25519:N': 'N' } };
    expect(await lists.applySigningKeyUpdate(alice, newMaster, null)).toBe(true);
    expect((await lists.get(alice))!.masterKey).toEqual(newMaster);
    await lists.forget(alice);
    expect(await lists.get(alice)).toBeNull();
    expect(await lists.devices.count({ user_id: alice })).toBe(0);
    expect(await lists.applySigningKeyUpdate(alice, newMaster, null)).toBe(false);
  });
});

describe('parsing what remote servers send', () => {
  const alice = '@alice:remote.test';

  it('parseUserDevicesResponse checks the shape and keeps only keys naming the user and device', () => {
    expect(parseUserDevicesResponse(alice, { user_id: '@other:remote.test', stream_id: 1, devices: [] })).toBeNull();
    expect(parseUserDevicesResponse(alice, { user_id: alice, stream_id: 'one', devices: [] })).toBeNull();
    expect(parseUserDevicesResponse(alice, { user_id: alice, stream_id: 1 })).toBeNull();
    const parsed = parseUserDevicesResponse(alice, {
      user_id: alice,
      stream_id: 3,
      devices: [
        { device_id: 'OK', keys: { user_id: alice, device_id: 'OK' } },
        { device_id: 'LIAR', keys: { user_id: '@mallory:remote.test', device_id: 'LIAR' } },
        { keys: {} },
      ],
      master_key: { user_id: alice, usage: ['self_signing'], keys: {} },
    });
    expect(parsed!.devices).toEqual([{ device_id: 'OK', keys: { user_id: alice, device_id: 'OK' } }, { device_id: 'LIAR', keys: null }]);
    expect(parsed!.master_key).toBeNull();
  });

  it('parseDeviceListUpdate refuses a user of another server and malformed fields', () => {
    expect(parseDeviceListUpdate('other.test', { user_id: alice, device_id: 'D', stream_id: 1 })).toBeNull();
    expect(parseDeviceListUpdate('remote.test', { user_id: alice, device_id: 'D', stream_id: '1' })).toBeNull();
    expect(parseDeviceListUpdate('remote.test', { user_id: alice, device_id: 'D', stream_id: 1, prev_id: ['x'] })).toBeNull();
    expect(parseDeviceListUpdate('remote.test', { user_id: alice, device_id: 'D', stream_id: 2, deleted: true })).toMatchObject({ prev_id: [], deleted: true, keys: null });
  });
});
