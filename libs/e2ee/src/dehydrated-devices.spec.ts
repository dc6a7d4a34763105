import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { DehydratedDeviceStore, parseDehydratedDeviceUpload } from './dehydrated-devices';

describe('parseDehydratedDeviceUpload (MSC3814 PUT /dehydrated_device)', () => {
  const keys = { user_id: '@a:x', device_id: 'D', algorithms: [], keys: {} };
  const data = { algorithm: 'org.matrix.msc3814.v1.olm', device_pickle: 'p' };

  it('needs device_id, device_data and device_keys', () => {
    expect(parseDehydratedDeviceUpload({ device_data: data, device_keys: keys })).toEqual({ error: 'device_id is required', missing: 'device_id' });
    expect(parseDehydratedDeviceUpload({ device_id: 'D', device_keys: keys })).toMatchObject({ missing: 'device_data' });
    expect(parseDehydratedDeviceUpload({ device_id: 'D', device_data: data })).toMatchObject({ missing: 'device_keys' });
  });

  it('refuses a device_data without algorithm, an empty device_id and a non-string name', () => {
    expect(parseDehydratedDeviceUpload({ device_id: 'D', device_data: { device_pickle: 'p' }, device_keys: keys })).toHaveProperty('error');
    expect(parseDehydratedDeviceUpload({ device_id: '', device_data: data, device_keys: keys })).toHaveProperty('error');
    expect(parseDehydratedDeviceUpload({ device_id: 'D', device_data: data, device_keys: keys, initial_device_display_name: 3 })).toHaveProperty('error');
  });

  it('passes the keys on in the /keys/upload shape', () => {
    const otk = { 'signed_curve25519:A': { key: 'k' } };
    expect(parseDehydratedDeviceUpload({ device_id: 'D', device_data: data, device_keys: keys, one_time_keys: otk, initial_device_display_name: 'n' })).toEqual({
      deviceId: 'D',
      deviceData: data,
      displayName: 'n',
      keys: { device_keys: keys, one_time_keys: otk },
    });
  });
});

describe('DehydratedDeviceStore', () => {
  let dir: string;
  let store: DocumentStore;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-dehydrated-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps one device per user: a put answers the one replaced, delete answers the one removed', async () => {
    const devices = await DehydratedDeviceStore.open(store);
    expect(await devices.get('@a:x')).toBeNull();
    expect(await devices.put('@a:x', 'D1', { algorithm: 'a', n: 1 })).toBeNull();
    expect(await devices.put('@a:x', 'D2', { algorithm: 'a', n: 2 })).toEqual({ device_id: 'D1', device_data: { algorithm: 'a', n: 1 } });
    expect(await devices.get('@a:x')).toEqual({ device_id: 'D2', device_data: { algorithm: 'a', n: 2 } });
    expect(await devices.get('@b:x')).toBeNull();
    expect(await devices.delete('@a:x')).toEqual({ device_id: 'D2', device_data: { algorithm: 'a', n: 2 } });
    expect(await devices.delete('@a:x')).toBeNull();
    expect(await devices.get('@a:x')).toBeNull();
  });
});
