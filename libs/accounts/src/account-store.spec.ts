import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { MatrixError } from '@atrium/http';
import { AccountStore } from './account-store';
import { hashPassword, verifyPassword } from './password';

describe('AccountStore (on the SQLite adapter)', () => {
  let dir: string;
  let store: DocumentStore;
  let now = 1_000_000;
  let accounts: AccountStore;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'atrium-accounts-'));
    store = await openDocumentStore(`sqlite:${join(dir, 'db.sqlite')}`);
    accounts = await AccountStore.open(store, () => now);
    await accounts.createUser({ userId: '@alice:test', localpart: 'alice', passwordHash: null });
  });

  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  async function expectUnknownToken(token: string, softLogout: boolean): Promise<void> {
    const error = await accounts.authenticate(token).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(MatrixError);
    expect((error as MatrixError).errcode).toBe('M_UNKNOWN_TOKEN');
    expect((error as MatrixError).extra.soft_logout).toBe(softLogout);
  }

  it('refuses a second user with the same ID', async () => {
    expect(await accounts.createUser({ userId: '@alice:test', localpart: 'alice', passwordHash: null })).toBe(false);
  });

  it('authenticates an issued token and forgets it at logout', async () => {
    await accounts.ensureDevice('@alice:test', 'DEV1', 'phone', '127.0.0.1');
    const { access_token } = await accounts.issueTokens('@alice:test', 'DEV1', { isGuest: false, withRefresh: false, lifetimeMs: 1000 });
    const requester = await accounts.authenticate(access_token);
    expect(requester).toMatchObject({ userId: '@alice:test', deviceId: 'DEV1', isGuest: false });
    await accounts.logout(requester);
    await expectUnknownToken(access_token, false);
    expect(await accounts.getDevice('@alice:test', 'DEV1')).toBeNull();
  });

  it('stores only digests of tokens', async () => {
    const { access_token } = await accounts.issueTokens('@alice:test', 'DEV1', { isGuest: false, withRefresh: false, lifetimeMs: 1000 });
    const tokens = await store.collection({ name: 'access_tokens' });
    const all = await tokens.find({});
    expect(all).toHaveLength(1);
    expect(JSON.stringify(all)).not.toContain(access_token);
  });

  it('expires refreshable access tokens with soft_logout, and refreshes them', async () => {
    const first = await accounts.issueTokens('@alice:test', 'DEV1', { isGuest: false, withRefresh: true, lifetimeMs: 1000 });
    expect(first.refresh_token).toBeDefined();
    expect(first.expires_in_ms).toBe(1000);
    now += 1001;
    await expectUnknownToken(first.access_token, true);

    const second = await accounts.refresh(first.refresh_token!, 1000);
    expect((await accounts.authenticate(second.access_token)).deviceId).toBe('DEV1');
    // The old refresh token was revoked once the new access token was used.
    await expect(accounts.refresh(first.refresh_token!, 1000)).rejects.toMatchObject({ errcode: 'M_UNKNOWN_TOKEN' });
  });

  it('keeps the old refresh token valid until the new pair is used', async () => {
    const first = await accounts.issueTokens('@alice:test', 'DEV1', { isGuest: false, withRefresh: true, lifetimeMs: 1000 });
    const lost = await accounts.refresh(first.refresh_token!, 1000);
    // The client never saw `lost` and repeats the refresh: still allowed, and `lost` is void.
    const retried = await accounts.refresh(first.refresh_token!, 1000);
    await expectUnknownToken(lost.access_token, false);
    expect((await accounts.authenticate(retried.access_token)).userId).toBe('@alice:test');
  });

  it('revokes earlier tokens of a device when it logs in again', async () => {
    const first = await accounts.issueTokens('@alice:test', 'DEV1', { isGuest: false, withRefresh: false, lifetimeMs: 0 });
    await accounts.issueTokens('@alice:test', 'DEV1', { isGuest: false, withRefresh: false, lifetimeMs: 0 });
    await expectUnknownToken(first.access_token, false);
  });

  it('logs out other devices but keeps the current one', async () => {
    for (const device of ['A', 'B', 'C']) await accounts.ensureDevice('@alice:test', device, null, null);
    const a = await accounts.issueTokens('@alice:test', 'A', { isGuest: false, withRefresh: false, lifetimeMs: 0 });
    const b = await accounts.issueTokens('@alice:test', 'B', { isGuest: false, withRefresh: false, lifetimeMs: 0 });
    await accounts.logoutOtherDevices('@alice:test', 'A');
    expect((await accounts.authenticate(a.access_token)).deviceId).toBe('A');
    await expectUnknownToken(b.access_token, false);
    expect((await accounts.listDevices('@alice:test')).map((d) => d.device_id)).toEqual(['A']);
  });

  it('deactivation removes every device and token and the password', async () => {
    await accounts.setPasswordHash('@alice:test', await hashPassword('pw'));
    await accounts.ensureDevice('@alice:test', 'A', null, null);
    const a = await accounts.issueTokens('@alice:test', 'A', { isGuest: false, withRefresh: true, lifetimeMs: 1000 });
    await accounts.deactivate('@alice:test');
    await expectUnknownToken(a.access_token, false);
    await expect(accounts.refresh(a.refresh_token!, 1000)).rejects.toMatchObject({ errcode: 'M_UNKNOWN_TOKEN' });
    const user = await accounts.getUser('@alice:test');
    expect(user).toMatchObject({ deactivated: true, password_hash: null });
    expect(await accounts.listDevices('@alice:test')).toEqual([]);
  });
});

describe('password hashing', () => {
  it('verifies the right password only', async () => {
    const hash = await hashPassword('correct horse');
    expect(hash.startsWith('scrypt$')).toBe(true);
    expect(await verifyPassword('correct horse', hash)).toBe(true);
    expect(await verifyPassword('correct horsf', hash)).toBe(false);
    expect(await verifyPassword('x', 'not-a-hash')).toBe(false);
  });

  it('salts each hash', async () => {
    expect(await hashPassword('same')).not.toBe(await hashPassword('same'));
  });
});
