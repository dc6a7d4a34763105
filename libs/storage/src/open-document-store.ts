import type { DocumentStore } from './port';
import { MongoDocumentStore } from './mongo-store';
import { SqliteDocumentStore } from './sqlite-store';

/**
 * Opens the store a URL names:
 *   sqlite:PATH          SQLite file (created if absent)
 *   sqlite::memory:      SQLite in memory (tests)
 *   mongodb://...        MongoDB or FerretDB; database from the URI path, `atrium` by default
 *   mongodb+srv://...    likewise
 */
export async function openDocumentStore(url: string): Promise<DocumentStore> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === '') throw new Error('sqlite: URL needs a path (sqlite:/var/lib/atrium/atrium.db or sqlite::memory:)');
    return new SqliteDocumentStore(path);
  }
  if (url.startsWith('mongodb://') || url.startsWith('mongodb+srv://')) {
    const store = new MongoDocumentStore(url);
    if (!(await store.ping())) {
      await store.close();
      throw new Error(`cannot reach MongoDB at ${url.replace(/\/\/[^@/]*@/, '//***@')}`);
    }
    return store;
  }
  throw new Error(`unsupported storage URL ${JSON.stringify(url)}: use sqlite:PATH or mongodb://`);
}
