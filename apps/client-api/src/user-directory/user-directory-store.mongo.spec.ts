import { openDocumentStore } from '@atrium/storage';
import { useFerretDb } from '@atrium/test-servers';
import { describeUserDirectoryStore } from './user-directory-store.contract';

// The same cases on the MongoDB adapter, against FerretDB (as libs/rooms' contract runs).
const ferretDb = useFerretDb();

describeUserDirectoryStore('MongoDB (FerretDB 1.24)', () => openDocumentStore(ferretDb.url('atrium_user_directory')));
