import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore } from '@atrium/storage';
import { describeUserDirectoryStore } from './user-directory-store.contract';

const dir = mkdtempSync(join(tmpdir(), 'atrium-user-directory-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeUserDirectoryStore('SQLite', () => openDocumentStore(`sqlite:${join(dir, 'directory.db')}`));
