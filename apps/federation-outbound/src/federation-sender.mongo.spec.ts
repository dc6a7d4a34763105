import { randomBytes } from 'node:crypto';
import { openDocumentStore } from '@atrium/storage';
import { useFerretDb } from '@atrium/test-servers';
import { describeFederationSender } from './federation-sender.suite';

// The same cases on the MongoDB adapter (the cluster's), against FerretDB; a new database per test.
const ferretDb = useFerretDb();

describeFederationSender('MongoDB (FerretDB 1.24)', () => openDocumentStore(ferretDb.url(`atrium_fedout_${randomBytes(4).toString('hex')}`)));
