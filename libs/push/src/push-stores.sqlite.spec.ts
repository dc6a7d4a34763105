import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore } from '@atrium/storage';
import { describePushStoresContract } from './push-stores.contract';

const dir = mkdtempSync(join(tmpdir(), 'atrium-push-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describePushStoresContract('SQLite', () => openDocumentStore(`sqlite:${join(dir, 'push.db')}`));
