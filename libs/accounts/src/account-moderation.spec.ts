import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { MatrixError } from '@atrium/http';
import { AccountStore } from './account-store';

/** "Account locking" and "Account suspension" flags of AccountStore, on the SQLite adapter. */
describe('AccountStore moderation', () => {
  let dir: string;
  let store: DocumentStore;
  let accounts: AccountStore;
  const options = { isGuest: false, withRefresh: true, lifetimeMs: 60_000 };

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-moderation-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    accounts = await AccountStore.open(store);
    await accounts.createUser({ userId: '@alice:test', localpart: 'alice', passwordHash: null });
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const errorOf = (promise: Promise<unknown>): Promise<MatrixError> => promise.then(() => { throw new Error('expected a failure'); }, (e: MatrixError) => e);

  it('marks existing tokens locked, keeps them, refuses new ones until unlocked', async () => {
    const tokens = await accounts.issueTokens('@alice:test', 'DEV1', options);
    await accounts.setModeration('@alice:test', 'locked', true);
    expect((await accounts.getUser('@alice:test'))?.locked).toBe(true);
    expect(await accounts.authenticate(tokens.access_token)).toMatchObject({ userId: '@alice:test', locked: true });
    // A refused login (same device) must not end the existing session.
    const refused = await errorOf(accounts.issueTokens('@alice:test', 'DEV1', options));
    expect([refused.status, refused.errcode, refused.extra.soft_logout]).toEqual([401, 'M_USER_LOCKED', true]);
    expect((await errorOf(accounts.refresh(tokens.refresh_token!, 60_000))).errcode).toBe('M_USER_LOCKED');
    expect((await accounts.authenticate(tokens.access_token)).locked).toBe(true);

    await accounts.setModeration('@alice:test', 'locked', false);
    expect((await accounts.authenticate(tokens.access_token)).locked).toBeUndefined();
    const again = await accounts.issueTokens('@alice:test', 'DEV2', options);
    expect((await accounts.authenticate(again.access_token)).locked).toBeUndefined();
  });

  it('suspension follows the user onto old and new tokens', async () => {
    const before = await accounts.issueTokens('@alice:test', 'DEV1', options);
    await accounts.setModeration('@alice:test', 'suspended', true);
    expect((await accounts.authenticate(before.access_token)).suspended).toBe(true);
    // "Log in and create additional sessions (which are also suspended)".
    const after = await accounts.issueTokens('@alice:test', 'DEV2', options);
    expect((await accounts.authenticate(after.access_token)).suspended).toBe(true);
    const refreshed = await accounts.refresh(after.refresh_token!, 60_000);
    expect((await accounts.authenticate(refreshed.access_token)).suspended).toBe(true);
    await accounts.setModeration('@alice:test', 'suspended', false);
    expect((await accounts.authenticate(refreshed.access_token)).suspended).toBeUndefined();
  });
});
