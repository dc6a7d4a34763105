import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore } from '@atrium/storage';
import { describeRoomStoreContract } from './room-store.contract';
import { describeFederationStateContract } from './federation-state.contract';

const dir = mkdtempSync(join(tmpdir(), 'atrium-rooms-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describeRoomStoreContract('SQLite', () => openDocumentStore(`sqlite:${join(dir, 'rooms.db')}`));
describeFederationStateContract('SQLite', () => openDocumentStore(`sqlite:${join(dir, 'rooms-federation.db')}`));
