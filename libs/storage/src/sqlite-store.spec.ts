import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeDocumentStoreContract } from './contract';
import { openDocumentStore } from './open-document-store';
import { SqliteDocumentStore } from './sqlite-store';

const dir = mkdtempSync(join(tmpdir(), 'atrium-sqlite-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeDocumentStoreContract('SQLite', () => openDocumentStore(`sqlite:${join(dir, 'contract.db')}`));

describe('SqliteDocumentStore specifics', () => {
  it('opens an in-memory store from sqlite::memory:', async () => {
    const store = await openDocumentStore('sqlite::memory:');
    try {
      expect(store).toBeInstanceOf(SqliteDocumentStore);
      const c = await store.collection({ name: 'mem' });
      expect(await c.insert({ _id: 'a' })).toBe(true);
      expect(await c.get('a')).toEqual({ _id: 'a' });
    } finally {
      await store.close();
    }
  });

  it('rejects URLs it does not know', async () => {
    await expect(openDocumentStore('postgres://x')).rejects.toThrow(/unsupported storage URL/);
    await expect(openDocumentStore('sqlite:')).rejects.toThrow(/needs a path/);
  });

  it('answers indexed filters and sorts from the expression indexes', async () => {
    const store = new SqliteDocumentStore(':memory:');
    try {
      await store.collection({ name: 'plans', indexes: [{ fields: ['room', 'depth'] }, { fields: ['sender'], unique: true }] });
      const plan = (filter: object, sort?: Record<string, 1 | -1>) => store.explainFind('plans', filter, { sort }).join('\n');
      expect(plan({ sender: '@a:x' })).toMatch(/USING INDEX "?u_plans__sender"?/);
      expect(plan({ room: '!r:x', depth: { $gt: 3 } })).toMatch(/USING INDEX "?i_plans__room__depth"?/);
      expect(plan({ room: { $in: ['!a:x', '!b:x'] } })).toMatch(/USING INDEX "?i_plans__room__depth"?/);
      // Sorting by the index's second key within one room needs no temp B-tree.
      const sorted = plan({ room: '!r:x' }, { depth: -1 });
      expect(sorted).toMatch(/USING INDEX "?i_plans__room__depth"?/);
      expect(sorted).not.toMatch(/TEMP B-TREE/);
      expect(plan({ _id: 'x' })).toMatch(/PRIMARY KEY|autoindex/i);
      expect(plan({ other: 1 })).toMatch(/SCAN/);
    } finally {
      await store.close();
    }
  });

  it('sees writes of another connection to the same file (WAL, busy timeout)', async () => {
    const path = join(dir, 'two.db');
    const a = new SqliteDocumentStore(path);
    const b = new SqliteDocumentStore(path);
    try {
      const ca = await a.collection({ name: 'shared', indexes: [{ fields: ['k'], unique: true }] });
      const cb = await b.collection({ name: 'shared', indexes: [{ fields: ['k'], unique: true }] });
      expect(await ca.insert({ _id: '1', k: 'x' })).toBe(true);
      expect(await cb.get('1')).toEqual({ _id: '1', k: 'x' });
      expect(await cb.insert({ _id: '1', k: 'y' })).toBe(false);
      await expect(cb.insert({ _id: '2', k: 'x' })).rejects.toThrow(/UNIQUE/);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
