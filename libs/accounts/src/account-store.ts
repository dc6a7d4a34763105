import { createHash, randomBytes } from 'node:crypto';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { Errors, type AccessTokenAuthenticator, type Requester } from '@atrium/http';

/**
 * Users, devices, access tokens and refresh tokens, over the storage port.
 * Spec: client-server-api "Client Authentication", "Relationship between
 * access tokens and devices", "Refreshing access tokens", "Soft logout",
 * and the device management module.
 *
 * Tokens are stored only as SHA-256 digests: a leaked database does not leak
 * usable tokens, and the digest is the record's `_id` so a lookup is one get.
 */

export interface UserRecord extends Doc {
  _id: string; // the full user ID
  localpart: string;
  password_hash: string | null;
  is_guest: boolean;
  is_admin: boolean;
  deactivated: boolean;
  created_ts: number;
  /** "Account locking" (PUT /admin/lock); absent on older records: not locked. */
  locked?: boolean;
  /** "Account suspension" (PUT /admin/suspend); absent: not suspended. */
  suspended?: boolean;
}

/** The account moderation flags, copied onto every access token of the user so authenticating reads one record. */
export type ModerationFlag = 'locked' | 'suspended';

export interface DeviceRecord extends Doc {
  _id: string; // `${user_id}\n${device_id}`
  user_id: string;
  device_id: string;
  display_name: string | null;
  last_seen_ts: number | null;
  last_seen_ip: string | null;
  created_ts: number;
}

interface AccessTokenRecord extends Doc {
  _id: string; // sha256 of the token
  user_id: string;
  device_id: string;
  is_guest: boolean;
  /** null: never expires (clients that did not ask for refresh tokens). */
  expires_ts: number | null;
  /** The refresh token issued with this access token, if any. */
  refresh_id: string | null;
  /** Set after a refresh: the refresh token that this pair replaces, revoked on first use of the pair. */
  replaces_refresh_id: string | null;
  created_ts: number;
  /** Copies of the user's moderation flags (setModeration keeps them in step). */
  locked?: boolean;
  suspended?: boolean;
}

interface RefreshTokenRecord extends Doc {
  _id: string; // sha256 of the token
  user_id: string;
  device_id: string;
  /** The refresh token this one replaces (revoked when this pair is first used). */
  replaces_refresh_id: string | null;
  created_ts: number;
}

export interface IssuedTokens {
  access_token: string;
  refresh_token?: string;
  expires_in_ms?: number;
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function newToken(prefix: string): string {
  return `${prefix}_${randomBytes(24).toString('base64url')}`;
}

/** Device IDs the server makes up: ten upper-case letters, like other homeservers. */
export function generateDeviceId(): string {
  const letters = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
  const bytes = randomBytes(10);
  return Array.from(bytes, (b) => letters[b % 26]).join('');
}

function deviceKey(userId: string, deviceId: string): string {
  return `${userId}\n${deviceId}`;
}

export class AccountStore implements AccessTokenAuthenticator {
  private constructor(
    private readonly users: Collection<UserRecord>,
    private readonly devices: Collection<DeviceRecord>,
    private readonly accessTokens: Collection<AccessTokenRecord>,
    private readonly refreshTokens: Collection<RefreshTokenRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<AccountStore> {
    return new AccountStore(
      await store.collection<UserRecord>({ name: 'users', indexes: [{ fields: ['localpart'] }] }),
      await store.collection<DeviceRecord>({ name: 'devices', indexes: [{ fields: ['user_id'] }] }),
      await store.collection<AccessTokenRecord>({
        name: 'access_tokens',
        indexes: [{ fields: ['user_id'] }, { fields: ['user_id', 'device_id'] }],
      }),
      await store.collection<RefreshTokenRecord>({
        name: 'refresh_tokens',
        indexes: [{ fields: ['user_id'] }, { fields: ['user_id', 'device_id'] }],
      }),
      now,
    );
  }

  // ---- users ----

  /** Creates the user; false if the ID is taken (the caller answers M_USER_IN_USE). */
  async createUser(user: { userId: string; localpart: string; passwordHash: string | null; isGuest?: boolean; isAdmin?: boolean }): Promise<boolean> {
    return this.users.insert({
      _id: user.userId,
      localpart: user.localpart,
      password_hash: user.passwordHash,
      is_guest: user.isGuest ?? false,
      is_admin: user.isAdmin ?? false,
      deactivated: false,
      created_ts: this.now(),
    });
  }

  getUser(userId: string): Promise<UserRecord | null> {
    return this.users.get(userId);
  }

  async setPasswordHash(userId: string, passwordHash: string | null): Promise<void> {
    await this.users.update(userId, { password_hash: passwordHash });
  }

  /** Upgrades a guest to a full account (registration with a guest's access token). */
  async upgradeGuest(userId: string, passwordHash: string): Promise<boolean> {
    return this.users.update(userId, { password_hash: passwordHash, is_guest: false }, { is_guest: true });
  }

  /**
   * "Account deactivation": the account can never be used again; every device
   * and token goes. The user record stays so the ID is never reissued.
   */
  async deactivate(userId: string): Promise<void> {
    await this.users.update(userId, { deactivated: true, password_hash: null });
    await this.accessTokens.deleteMany({ user_id: userId });
    await this.refreshTokens.deleteMany({ user_id: userId });
    await this.devices.deleteMany({ user_id: userId });
  }

  // ---- devices ----

  /** Creates the device if new; keeps its display name if it exists (login with a known device_id). */
  async ensureDevice(userId: string, deviceId: string, displayName: string | null, ip: string | null): Promise<void> {
    const created = await this.devices.insert({
      _id: deviceKey(userId, deviceId),
      user_id: userId,
      device_id: deviceId,
      display_name: displayName,
      last_seen_ts: this.now(),
      last_seen_ip: ip,
      created_ts: this.now(),
    });
    if (!created) await this.devices.update(deviceKey(userId, deviceId), { last_seen_ts: this.now(), last_seen_ip: ip });
  }

  getDevice(userId: string, deviceId: string): Promise<DeviceRecord | null> {
    return this.devices.get(deviceKey(userId, deviceId));
  }

  listDevices(userId: string): Promise<DeviceRecord[]> {
    return this.devices.find({ user_id: userId }, { sort: { device_id: 1 } });
  }

  async renameDevice(userId: string, deviceId: string, displayName: string): Promise<boolean> {
    return this.devices.update(deviceKey(userId, deviceId), { display_name: displayName });
  }

  /** Deletes a device and logs it out (its access and refresh tokens go with it). */
  async deleteDevice(userId: string, deviceId: string): Promise<void> {
    await this.accessTokens.deleteMany({ user_id: userId, device_id: deviceId });
    await this.refreshTokens.deleteMany({ user_id: userId, device_id: deviceId });
    await this.devices.delete(deviceKey(userId, deviceId));
  }

  // ---- tokens ----

  /**
   * Issues an access token for a device. "If the client sets the device_id, the
   * server will invalidate any access and refresh tokens previously assigned to
   * that device", so earlier tokens of the device are revoked first.
   * With `withRefresh`, the access token expires after `lifetimeMs` and comes
   * with a refresh token; otherwise it does not expire.
   */
  async issueTokens(userId: string, deviceId: string, options: { isGuest: boolean; withRefresh: boolean; lifetimeMs: number }): Promise<IssuedTokens> {
    // A locked account "cannot obtain a new access token until the account has been unlocked";
    // checked before the device's tokens are revoked, so a refused login ends no session.
    if ((await this.users.get(userId))?.locked) throw Errors.userLocked();
    await this.accessTokens.deleteMany({ user_id: userId, device_id: deviceId });
    await this.refreshTokens.deleteMany({ user_id: userId, device_id: deviceId });
    return this.issuePair(userId, deviceId, options, null);
  }

  private async issuePair(
    userId: string,
    deviceId: string,
    options: { isGuest: boolean; withRefresh: boolean; lifetimeMs: number },
    replacesRefreshId: string | null,
  ): Promise<IssuedTokens> {
    const before = await this.users.get(userId);
    if (before?.locked) throw Errors.userLocked();
    const accessToken = newToken('atr');
    let refreshToken: string | undefined;
    let refreshId: string | null = null;
    if (options.withRefresh) {
      refreshToken = newToken('atrr');
      refreshId = digest(refreshToken);
      await this.refreshTokens.insert({
        _id: refreshId,
        user_id: userId,
        device_id: deviceId,
        replaces_refresh_id: replacesRefreshId,
        created_ts: this.now(),
      });
    }
    await this.accessTokens.insert({
      _id: digest(accessToken),
      user_id: userId,
      device_id: deviceId,
      is_guest: options.isGuest,
      expires_ts: options.withRefresh ? this.now() + options.lifetimeMs : null,
      refresh_id: refreshId,
      replaces_refresh_id: replacesRefreshId,
      created_ts: this.now(),
      suspended: before?.suspended === true,
    });
    // A lock or suspension written while this token was being issued: setModeration writes the
    // user before the tokens, so either its token update saw this token or this read sees the flag.
    const after = await this.users.get(userId);
    if (after?.locked || after?.suspended !== before?.suspended) {
      await this.accessTokens.update(digest(accessToken), { locked: after?.locked === true, suspended: after?.suspended === true });
    }
    const issued: IssuedTokens = { access_token: accessToken };
    if (refreshToken) {
      issued.refresh_token = refreshToken;
      issued.expires_in_ms = options.lifetimeMs;
    }
    return issued;
  }

  /** AccessTokenAuthenticator: resolves a token or throws M_UNKNOWN_TOKEN (soft_logout when merely expired). */
  async authenticate(accessToken: string): Promise<Requester> {
    const record = await this.accessTokens.get(digest(accessToken));
    if (!record) throw Errors.unknownToken(false);
    if (record.expires_ts !== null && record.expires_ts <= this.now()) {
      // "Any HTTP calls that use an expired access token will return with an error code
      // M_UNKNOWN_TOKEN, preferably with soft_logout: true."
      throw Errors.unknownToken(true, 'Access token has expired');
    }
    if (record.replaces_refresh_id) await this.revokeReplaced(record._id, record.replaces_refresh_id);
    const requester: Requester = { userId: record.user_id, deviceId: record.device_id, isGuest: record.is_guest, tokenId: record._id };
    if (record.locked) requester.locked = true;
    if (record.suspended) requester.suspended = true;
    return requester;
  }

  /**
   * Locks or suspends an account, or lifts it ("Account moderation"). The
   * flag goes on the user, then on each of their access tokens (which stay
   * valid: "Servers SHOULD NOT invalidate access tokens on locked accounts"),
   * so authenticate() needs no second read.
   */
  async setModeration(userId: string, flag: ModerationFlag, value: boolean): Promise<void> {
    await this.users.update(userId, { [flag]: value });
    await this.accessTokens.updateMany({ user_id: userId }, { [flag]: value });
  }

  /** "The old refresh token remains valid until the new access token or refresh token is used." */
  private async revokeReplaced(accessTokenId: string, oldRefreshId: string): Promise<void> {
    await this.refreshTokens.delete(oldRefreshId);
    await this.accessTokens.update(accessTokenId, { replaces_refresh_id: null });
  }

  /**
   * POST /refresh: swaps a refresh token for a new access token and refresh
   * token bound to the same device. The access token issued with the old
   * refresh token is revoked at once; the old refresh token only once the new
   * pair is used, so a client that lost the response can repeat the refresh.
   */
  async refresh(refreshToken: string, lifetimeMs: number): Promise<IssuedTokens> {
    const id = digest(refreshToken);
    const record = await this.refreshTokens.get(id);
    if (!record) throw Errors.unknownToken(false, 'Unknown refresh token');
    if (record.replaces_refresh_id) await this.refreshTokens.delete(record.replaces_refresh_id);
    const user = await this.users.get(record.user_id);
    if (!user || user.deactivated) throw Errors.unknownToken(false, 'Unknown refresh token');
    // Locked: no new token, and the current pair is kept for when the lock is lifted.
    if (user.locked) throw Errors.userLocked();
    await this.accessTokens.deleteMany({ user_id: record.user_id, device_id: record.device_id, refresh_id: id });
    // A repeated refresh of the same token replaces the pair it issued before.
    const previous = await this.refreshTokens.find({ user_id: record.user_id, device_id: record.device_id, replaces_refresh_id: id });
    for (const stale of previous) {
      await this.accessTokens.deleteMany({ refresh_id: stale._id });
      await this.refreshTokens.delete(stale._id);
    }
    return this.issuePair(record.user_id, record.device_id, { isGuest: user.is_guest, withRefresh: true, lifetimeMs }, id);
  }

  /** POST /logout: this token's session ends, and with it the device. */
  async logout(requester: Requester): Promise<void> {
    await this.deleteDevice(requester.userId, requester.deviceId);
  }

  /** POST /logout/all: every token and device of the user. */
  async logoutAll(userId: string): Promise<void> {
    await this.accessTokens.deleteMany({ user_id: userId });
    await this.refreshTokens.deleteMany({ user_id: userId });
    await this.devices.deleteMany({ user_id: userId });
  }

  /** After a password change with logout_devices: every other device and its tokens go. */
  async logoutOtherDevices(userId: string, keepDeviceId: string | null): Promise<void> {
    for (const device of await this.listDevices(userId)) {
      if (device.device_id !== keepDeviceId) await this.deleteDevice(userId, device.device_id);
    }
    // Tokens whose device record is missing (should not exist, but never leave a live token behind).
    const tokens = await this.accessTokens.find({ user_id: userId });
    for (const token of tokens) if (token.device_id !== keepDeviceId) await this.accessTokens.delete(token._id);
  }
}
