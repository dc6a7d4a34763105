import { openDocumentStore } from '@atrium/storage';
import { useFerretDb } from '@atrium/test-servers';
import { describePushStoresContract } from './push-stores.contract';

// The same tests on the MongoDB adapter, against FerretDB (as libs/storage's contract runs).
const ferretDb = useFerretDb();

describePushStoresContract('MongoDB (FerretDB 1.24)', () => openDocumentStore(ferretDb.url('atrium_push')));
