import { join } from 'node:path';
import { openDocumentStore } from '@atrium/storage';
import { describeFederationSender } from './federation-sender.suite';

describeFederationSender('SQLite', (dir) => openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`));
