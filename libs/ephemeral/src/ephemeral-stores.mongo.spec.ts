import { openDocumentStore } from '@atrium/storage';
import { useFerretDb } from '@atrium/test-servers';
import { describeEphemeralStoresContract } from './ephemeral-stores.contract';

// The same contract on the MongoDB adapter, against FerretDB (as libs/storage's contract runs).
const ferretDb = useFerretDb();

describeEphemeralStoresContract('MongoDB (FerretDB 1.24)', () => openDocumentStore(ferretDb.url('atrium_ephemeral')));
