import { openDocumentStore } from '@atrium/storage';
import { useFerretDb } from '@atrium/test-servers';
import { describeRoomStoreContract } from './room-store.contract';
import { describeFederationStateContract } from './federation-state.contract';

// The same contract on the MongoDB adapter, against FerretDB (as libs/storage's contract runs).
const ferretDb = useFerretDb();

describeRoomStoreContract('MongoDB (FerretDB 1.24)', () => openDocumentStore(ferretDb.url('atrium_rooms')));
describeFederationStateContract('MongoDB (FerretDB 1.24)', () => openDocumentStore(ferretDb.url('atrium_rooms_federation')));
