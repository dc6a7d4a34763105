/**
 * One FerretDB for a whole Jest test file: started in `beforeAll`, stopped in
 * `afterAll`. The MongoDB contract runs of the storage-backed libs use it the
 * same way: `openDocumentStore(ferretDb.url('atrium_x'))`.
 */
import { startFerretDb, type FerretDbServer } from './ferretdb';

export interface FerretDbSuite {
  /** `mongodb://127.0.0.1:PORT/<db>`; throws when FerretDB did not start. */
  url(db: string): string;
}

export function useFerretDb(): FerretDbSuite {
  let server: FerretDbServer | undefined;
  beforeAll(async () => {
    server = await startFerretDb();
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  });
  return {
    url(db: string): string {
      if (!server) throw new Error('FerretDB did not start');
      return `${server.url.replace(/\/$/, '')}/${db}`;
    },
  };
}
