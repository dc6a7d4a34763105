import { openDocumentStore } from '@atrium/storage';
import { startFerretDb, type FerretDbServer } from '../../../tools/test-servers/ferretdb';
import { describeEphemeralStoresContract } from './ephemeral-stores.contract';

// The same contract on the MongoDB adapter, against FerretDB (as libs/storage's contract runs).
let server: FerretDbServer | undefined;
beforeAll(async () => {
  server = await startFerretDb();
}, 30_000);
afterAll(async () => {
  await server?.stop();
});

describeEphemeralStoresContract('MongoDB (FerretDB 1.24)', () => {
  if (!server) throw new Error('FerretDB did not start');
  return openDocumentStore(`${server.url.replace(/\/$/, '')}/atrium_ephemeral`);
});
