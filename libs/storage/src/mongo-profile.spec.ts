import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useFerretDb } from '@atrium/test-servers';
import { MongoDocumentStore } from './mongo-store';

const ferretDb = useFerretDb();

describe('ATRIUM_STORAGE_PROFILE (MongoDB adapter)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'atrium-profile-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes the commands sent, by collection and filter shape, without values, when the store closes', async () => {
    process.env.ATRIUM_STORAGE_PROFILE = dir;
    let store: MongoDocumentStore;
    try {
      store = new MongoDocumentStore(ferretDb.url('atrium_profile'));
    } finally {
      delete process.env.ATRIUM_STORAGE_PROFILE;
    }
    const c = await store.collection<{ _id: string; n: number; secret?: string }>({ name: 'profiled' });
    await c.insertMany([{ _id: 'a', n: 1, secret: 'do-not-log' }, { _id: 'b', n: 2 }]);
    expect(await c.get('a')).toMatchObject({ n: 1 });
    expect(await c.get('b')).toMatchObject({ n: 2 });
    expect(await c.find({ n: { $gt: 1 } }, { sort: { n: 1 }, limit: 5 })).toHaveLength(1);
    await store.close();

    const files = readdirSync(dir).filter((f) => f === `mongo-profile-${process.pid}.json`);
    expect(files).toHaveLength(1);
    const text = readFileSync(join(dir, files[0]), 'utf8');
    const rows = (JSON.parse(text) as { rows: { command: string; count: number }[] }).rows;
    const byCommand = new Map(rows.map((r) => [r.command, r.count]));
    expect(byCommand.get('find profiled {_id} limit')).toBe(2);
    expect(byCommand.get('find profiled {n:$gt} sort {n} limit')).toBe(1);
    expect(byCommand.get('insert profiled (many)')).toBe(1);
    expect(text).not.toContain('do-not-log');
  });

  it('stays off unless the variable is set', async () => {
    const store = new MongoDocumentStore(ferretDb.url('atrium_profile_off'));
    await (await store.collection({ name: 'quiet' })).get('x');
    await store.close();
    expect(readdirSync(dir).filter((f) => f !== `mongo-profile-${process.pid}.json`)).toEqual([]);
  });
});
