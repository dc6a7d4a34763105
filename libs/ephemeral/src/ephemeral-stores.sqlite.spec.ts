import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore } from '@atrium/storage';
import { describeEphemeralStoresContract } from './ephemeral-stores.contract';

const dir = mkdtempSync(join(tmpdir(), 'atrium-ephemeral-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeEphemeralStoresContract('SQLite', () => openDocumentStore(`sqlite:${join(dir, 'ephemeral.db')}`));
