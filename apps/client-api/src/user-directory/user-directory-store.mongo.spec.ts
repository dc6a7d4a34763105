import { openDocumentStore } from '@atrium/storage';
import { startFerretDb, type FerretDbServer } from '../../../../tools/test-servers/ferretdb';
import { describeUserDirectoryStore } from './user-directory-store.contract';

// The same cases on the MongoDB adapter, against FerretDB (as libs/rooms' contract runs).
let server: FerretDbServer | undefined;
beforeAll(async () => {
  server = await startFerretDb();
}, 30_000);
afterAll(async () => {
  await server?.stop();
});

describeUserDirectoryStore('MongoDB (FerretDB 1.24)', () => {
  if (!server) throw new Error('FerretDB did not start');
  return openDocumentStore(`${server.url.replace(/\/$/, '')}/atrium_user_directory`);
});
