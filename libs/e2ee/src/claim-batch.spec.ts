import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamAllocator } from '@atrium/rooms';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { E2eeStore } from './e2ee-store';

/** Claiming one-time keys of many devices at once (E2eeStore.claimOneTimeKeysOfDevices), on SQLite. */
describe('claimOneTimeKeysOfDevices', () => {
  let dir: string;
  let store: DocumentStore;
  let keys: E2eeStore;
  const alice = '@alice:hs.test';

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-claim-batch-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    keys = await E2eeStore.open(store, await StreamAllocator.open(store));
    for (let d = 0; d < 10; d++) {
      for (let k = 0; k < 2; k++) await keys.insertOneTimeKey(alice, `D${d}`, `signed_curve25519:K${d}${k}`, { key: `k${d}${k}` });
    }
    await keys.insertOneTimeKey(alice, 'D0', 'curve25519:OTHER', 'other');
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("takes each device's oldest upload first; keys stored before upload_seq existed count as the oldest", async () => {
    const bob = '@bob:hs.test';
    await keys.insertOneTimeKeys(bob, 'B', [['signed_curve25519:aaa', { key: 'newer' }]]);
    await keys.insertOneTimeKeys(bob, 'C', [['signed_curve25519:zzz', { key: 'older' }]]);
    await keys.insertOneTimeKeys(bob, 'C', [['signed_curve25519:aaa', { key: 'newer' }]]);
    // A key from before the field: no upload_seq.
    await keys.oneTimeKeys.insert({ _id: `${bob}\nB\nsigned_curve25519:zzz`, user_id: bob, device_id: 'B', algorithm: 'signed_curve25519', key_id: 'signed_curve25519:zzz', json: '{"key":"legacy"}' });
    const wanted = new Map([['B', 'signed_curve25519'], ['C', 'signed_curve25519']]);
    const first = await keys.claimOneTimeKeysOfDevices(bob, wanted);
    expect([first.get('B')!.key, first.get('C')!.key]).toEqual([{ key: 'legacy' }, { key: 'older' }]);
    // One device alone (claimOneTimeKey) follows the same order.
    expect((await keys.claimOneTimeKey(bob, 'B', 'signed_curve25519'))!.key).toEqual({ key: 'newer' });
  });

  it('hands out one key per device, each key once, only of the asked algorithm, and nothing for unknown devices', async () => {
    const wanted = new Map([...Array.from({ length: 10 }, (_, d) => [`D${d}`, 'signed_curve25519'] as [string, string]), ['NOPE', 'signed_curve25519']]);
    const first = await keys.claimOneTimeKeysOfDevices(alice, wanted);
    const second = await keys.claimOneTimeKeysOfDevices(alice, wanted);
    const third = await keys.claimOneTimeKeysOfDevices(alice, wanted);
    expect(first.size).toBe(10);
    expect(second.size).toBe(10);
    expect(third.size).toBe(0);
    for (let d = 0; d < 10; d++) {
      const ids = [first.get(`D${d}`)!.keyId, second.get(`D${d}`)!.keyId].sort();
      expect(ids).toEqual([`signed_curve25519:K${d}0`, `signed_curve25519:K${d}1`]);
    }
    expect(first.has('NOPE')).toBe(false);
    // The other algorithm's key is still there.
    expect(await keys.oneTimeKeyCounts(alice, 'D0')).toEqual({ signed_curve25519: 0, curve25519: 1 });
  });

  it('two claimers racing never get the same key', async () => {
    const wanted = new Map(Array.from({ length: 10 }, (_, d) => [`D${d}`, 'signed_curve25519'] as [string, string]));
    const [x, y] = await Promise.all([keys.claimOneTimeKeysOfDevices(alice, wanted), keys.claimOneTimeKeysOfDevices(alice, wanted)]);
    for (let d = 0; d < 10; d++) {
      expect(x.get(`D${d}`)).toBeDefined();
      expect(y.get(`D${d}`)).toBeDefined();
      expect(x.get(`D${d}`)!.keyId).not.toBe(y.get(`D${d}`)!.keyId);
    }
  });
});
