import { useFerretDb } from '@atrium/test-servers';
import { describeDocumentStoreContract } from './contract';
import { MongoDocumentStore, mongoDatabaseName } from './mongo-store';
import { openDocumentStore } from './open-document-store';

// The MongoDB adapter runs against FerretDB 1.24 with its SQLite backend
// (ARCHITECTURE.md, "Storage"); a missing binary fails here, it is never skipped.
const ferretDb = useFerretDb();

describeDocumentStoreContract('MongoDB (FerretDB 1.24)', () => openDocumentStore(ferretDb.url('atrium_contract')));

describe('MongoDocumentStore specifics', () => {
  it('takes the database name from the URI path, atrium by default', () => {
    expect(mongoDatabaseName('mongodb://127.0.0.1:27017/')).toBe('atrium');
    expect(mongoDatabaseName('mongodb://127.0.0.1:27017')).toBe('atrium');
    expect(mongoDatabaseName('mongodb://u:p@a:1,b:2/hs?replicaSet=rs0')).toBe('hs');
    expect(mongoDatabaseName('mongodb+srv://cluster.example/my%5Fdb')).toBe('my_db');
  });

  it('opens a store from a mongodb:// URL and keeps databases apart', async () => {
    const one = await openDocumentStore(ferretDb.url('atrium_one'));
    const two = await openDocumentStore(ferretDb.url('atrium_two'));
    try {
      expect(one).toBeInstanceOf(MongoDocumentStore);
      await (await one.collection({ name: 'things' })).put({ _id: 'a', n: 1 });
      expect(await (await two.collection({ name: 'things' })).get('a')).toBeNull();
      expect(await (await one.collection({ name: 'things' })).get('a')).toEqual({ _id: 'a', n: 1 });
    } finally {
      await one.close();
      await two.close();
    }
  });

  it('fails to open when nothing answers', async () => {
    const store = new MongoDocumentStore('mongodb://127.0.0.1:1/x', { serverSelectionTimeoutMs: 300 });
    expect(await store.ping()).toBe(false);
    await store.close();
  });
});
