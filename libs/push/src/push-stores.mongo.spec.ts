import { openDocumentStore } from '@atrium/storage';
import { startFerretDb, type FerretDbServer } from '../../../tools/test-servers/ferretdb';
import { describePushStoresContract } from './push-stores.contract';

// The same tests on the MongoDB adapter, against FerretDB (as libs/storage's contract runs).
let server: FerretDbServer | undefined;
beforeAll(async () => {
  server = await startFerretDb();
}, 30_000);
afterAll(async () => {
  await server?.stop();
});

describePushStoresContract('MongoDB (FerretDB 1.24)', () => {
  if (!server) throw new Error('FerretDB did not start');
  return openDocumentStore(`${server.url.replace(/\/$/, '')}/atrium_push`);
});
