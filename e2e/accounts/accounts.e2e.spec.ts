/**
 * The accounts slice through matrix-js-sdk against a running server, in both
 * modes: registration (UIA, tokens, guests, availability), login (both
 * identifier forms), whoami, devices, password change, refresh tokens,
 * logout, deactivation, rate limits and bad input.
 */
import type { MatrixClient } from 'matrix-js-sdk';
import { startTestServer, type Mode, type TestServer } from '../support/servers';
import { client, matrixError, registerUser, uniqueName } from '../support/clients';
import { verifyJsonSignature } from '@atrium/matrix';

const modes: Mode[] = ['embedded', 'cluster'];

describe.each(modes)('accounts (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;

  beforeAll(async () => {
    server = await startTestServer(mode, {
      env: {
        ATRIUM_REGISTRATION__TOKENS: '["let-me-in"]',
        ATRIUM_AUTH__ACCESS_TOKEN_LIFETIME_MS: '1500',
        // A burst of 30 logins per address per window: the suite's own ~15 logins fit, and the
        // rate-limit test then exhausts the rest.
        ATRIUM_RATE_LIMITS__LOGIN__BURST: '30',
        ATRIUM_RATE_LIMITS__LOGIN__PER_SECOND: '0.1',
        ATRIUM_RATE_LIMITS__REGISTER__BURST: '40',
        ATRIUM_RATE_LIMITS__REGISTER__PER_SECOND: '1',
      },
    });
    base = server.baseUrl;
  });

  afterAll(async () => {
    await server?.stop();
  });

  async function loggedIn(username: string, password: string): Promise<MatrixClient> {
    const response = await client(base).loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: username }, password });
    return client(base, { userId: response.user_id, accessToken: response.access_token, deviceId: response.device_id });
  }

  describe('discovery', () => {
    it('lists spec versions', async () => {
      const versions = await client(base).getVersions();
      expect(versions.versions).toEqual(expect.arrayContaining(['r0.6.1', 'v1.1', 'v1.12', 'v1.16', 'v1.19']));
    });

    it('serves /.well-known/matrix/client', async () => {
      const response = await fetch(`${base}/.well-known/matrix/client`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as Record<string, { base_url: string }>;
      expect(body['m.homeserver'].base_url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    });

    it('answers an unknown endpoint with 404 M_UNRECOGNIZED', async () => {
      const response = await fetch(`${base}/_matrix/client/v3/no/such/endpoint`);
      expect(response.status).toBe(404);
      expect(await response.json()).toMatchObject({ errcode: 'M_UNRECOGNIZED' });
    });

    it('answers a CORS pre-flight', async () => {
      const response = await fetch(`${base}/_matrix/client/v3/login`, { method: 'OPTIONS' });
      expect(response.status).toBeLessThan(300);
      expect(response.headers.get('access-control-allow-origin')).toBe('*');
    });
  });

  describe('registration', () => {
    it('offers the flows as a 401 with a session when auth is missing', async () => {
      const error = await matrixError(client(base).registerRequest({ username: uniqueName('flows'), password: 'pw-123456' }));
      expect(error.httpStatus).toBe(401);
      expect(error.data.session).toEqual(expect.any(String));
      expect(error.data.flows).toEqual(
        expect.arrayContaining([{ stages: ['m.login.dummy'] }, { stages: ['m.login.registration_token'] }]),
      );
    });

    it('registers with m.login.dummy and logs the new user in', async () => {
      const username = uniqueName('dummy');
      const response = await registerUser(base, username, 'pw-123456');
      expect(response.user_id).toBe(`@${username}:${server.serverName}`);
      expect(response.access_token).toEqual(expect.any(String));
      const whoami = await client(base, { userId: response.user_id, accessToken: response.access_token! }).whoami();
      expect(whoami).toEqual({ user_id: response.user_id, device_id: response.device_id, is_guest: false });
    });

    it('registers with a registration token across two requests of one session', async () => {
      const username = uniqueName('token');
      const sdk = client(base);
      const first = await matrixError(sdk.registerRequest({ username, password: 'pw-123456' }));
      const session = first.data.session as string;
      const wrong = await matrixError(sdk.registerRequest({ username, password: 'pw-123456', auth: { type: 'm.login.registration_token', token: 'nope', session } }));
      expect(wrong.httpStatus).toBe(401);
      expect(wrong.errcode).toBe('M_FORBIDDEN');
      const response = await sdk.registerRequest({ username, password: 'pw-123456', auth: { type: 'm.login.registration_token', token: 'let-me-in', session } });
      expect(response.user_id).toBe(`@${username}:${server.serverName}`);
    });

    it('checks registration token validity', async () => {
      const ok = await fetch(`${base}/_matrix/client/v1/register/m.login.registration_token/validity?token=let-me-in`);
      expect(await ok.json()).toEqual({ valid: true });
      const bad = await fetch(`${base}/_matrix/client/v1/register/m.login.registration_token/validity?token=other`);
      expect(await bad.json()).toEqual({ valid: false });
    });

    it('honours inhibit_login', async () => {
      const response = await registerUser(base, uniqueName('inhibit'), 'pw-123456', { inhibit_login: true });
      expect(response.user_id).toBeDefined();
      expect(response.access_token).toBeUndefined();
      expect(response.device_id).toBeUndefined();
    });

    it('refuses a taken username with M_USER_IN_USE, before and after UIA', async () => {
      const username = uniqueName('taken');
      await registerUser(base, username, 'pw-123456');
      // matrix-js-sdk turns the 400 M_USER_IN_USE answer into `false`; the raw answer is checked too.
      expect(await client(base).isUsernameAvailable(username)).toBe(false);
      const raw = await fetch(`${base}/_matrix/client/v3/register/available?username=${username}`);
      expect(raw.status).toBe(400);
      expect(((await raw.json()) as { errcode: string }).errcode).toBe('M_USER_IN_USE');
      const error = await matrixError(registerUser(base, username, 'pw-123456'));
      expect(error.httpStatus).toBe(400);
      expect(error.errcode).toBe('M_USER_IN_USE');
    });

    it('reports a free username as available', async () => {
      expect(await client(base).isUsernameAvailable(uniqueName('free'))).toBe(true);
    });

    it.each(['Upper', 'has space', 'emoji😀', ''])('refuses the username %j with M_INVALID_USERNAME', async (username) => {
      const error = await matrixError(registerUser(base, username, 'pw-123456'));
      expect(error.httpStatus).toBe(400);
      expect(error.errcode).toBe('M_INVALID_USERNAME');
    });

    it('registers a guest, who may call whoami but not change a password', async () => {
      const guest = await client(base).registerGuest();
      expect(guest.user_id).toMatch(/^@\d+:/);
      const guestClient = client(base, { userId: guest.user_id, accessToken: guest.access_token! });
      expect((await guestClient.whoami()).is_guest).toBe(true);
      const error = await matrixError(guestClient.setPassword({ type: 'm.login.password' }, 'x'));
      expect(error.httpStatus).toBe(403);
      expect(error.errcode).toBe('M_GUEST_ACCESS_FORBIDDEN');
    });

    it('refuses a body that is not JSON with M_NOT_JSON', async () => {
      const response = await fetch(`${base}/_matrix/client/v3/register`, { method: 'POST', body: '{not json', headers: { 'content-type': 'application/json' } });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ errcode: 'M_NOT_JSON' });
    });

    it('refuses a wrongly typed field with M_BAD_JSON', async () => {
      const response = await fetch(`${base}/_matrix/client/v3/register`, { method: 'POST', body: JSON.stringify({ username: 42 }) });
      expect(response.status).toBe(400);
      expect(await response.json()).toMatchObject({ errcode: 'M_BAD_JSON' });
    });

    it('refuses an oversized body with M_TOO_LARGE', async () => {
      const response = await fetch(`${base}/_matrix/client/v3/register`, { method: 'POST', body: JSON.stringify({ username: 'x'.repeat(2 * 1024 * 1024) }) });
      expect(response.status).toBe(413);
      expect(await response.json()).toMatchObject({ errcode: 'M_TOO_LARGE' });
    });
  });

  describe('login and sessions', () => {
    const password = 'correct-horse-1';
    let username: string;
    let userId: string;

    beforeAll(async () => {
      username = uniqueName('login');
      userId = (await registerUser(base, username, password)).user_id;
    });

    it('advertises m.login.password', async () => {
      const flows = await client(base).loginFlows();
      expect(flows.flows).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'm.login.password' })]));
    });

    it('logs in with the identifier form and the legacy user form', async () => {
      const sdk = client(base);
      const viaIdentifier = await sdk.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password });
      expect(viaIdentifier.user_id).toBe(userId);
      const viaUser = await sdk.loginRequest({ type: 'm.login.password', user: username, password } as never);
      expect(viaUser.user_id).toBe(userId);
      expect(viaUser.device_id).not.toBe(viaIdentifier.device_id);
      expect(viaUser.well_known?.['m.homeserver']?.base_url).toBeDefined();
    });

    it('refuses a wrong password and an unknown user alike with 403 M_FORBIDDEN', async () => {
      const sdk = client(base);
      const wrong = await matrixError(sdk.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: username }, password: 'nope' }));
      const unknown = await matrixError(sdk.loginRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: uniqueName('ghost') }, password }));
      for (const error of [wrong, unknown]) {
        expect(error.httpStatus).toBe(403);
        expect(error.errcode).toBe('M_FORBIDDEN');
      }
    });

    it('lists, renames and deletes devices (deletion needs the password)', async () => {
      const alice = await loggedIn(username, password);
      const other = await loggedIn(username, password);
      const otherDevice = other.getDeviceId()!;
      const { devices } = await alice.getDevices();
      expect(devices.map((d) => d.device_id)).toEqual(expect.arrayContaining([alice.getDeviceId(), otherDevice]));

      await alice.setDeviceDetails(otherDevice, { display_name: 'Second phone' });
      expect((await alice.getDevice(otherDevice)).display_name).toBe('Second phone');

      const challenge = await matrixError(alice.deleteDevice(otherDevice));
      expect(challenge.httpStatus).toBe(401);
      expect(challenge.data.flows).toEqual([{ stages: ['m.login.password'] }]);
      const badPassword = await matrixError(alice.deleteDevice(otherDevice, { type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password: 'wrong', session: challenge.data.session } as never));
      expect(badPassword.httpStatus).toBe(401);
      expect(badPassword.errcode).toBe('M_FORBIDDEN');
      await alice.deleteDevice(otherDevice, { type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password, session: challenge.data.session } as never);

      expect((await matrixError(alice.getDevice(otherDevice))).errcode).toBe('M_NOT_FOUND');
      const revoked = await matrixError(other.whoami());
      expect(revoked.httpStatus).toBe(401);
      expect(revoked.errcode).toBe('M_UNKNOWN_TOKEN');
    });

    it('deletes several devices at once with POST /delete_devices after the password stage', async () => {
      const alice = await loggedIn(username, password);
      const [one, two] = [await loggedIn(username, password), await loggedIn(username, password)];
      const ids = [one.getDeviceId()!, two.getDeviceId()!];
      const challenge = await matrixError(alice.deleteMultipleDevices(ids));
      expect(challenge.httpStatus).toBe(401);
      await alice.deleteMultipleDevices(ids, { type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password, session: challenge.data.session } as never);
      const remaining = (await alice.getDevices()).devices.map((d) => d.device_id);
      expect(remaining).toContain(alice.getDeviceId());
      for (const [i, sdk] of [one, two].entries()) {
        expect(remaining).not.toContain(ids[i]);
        expect((await matrixError(sdk.whoami())).errcode).toBe('M_UNKNOWN_TOKEN');
      }
    });

    it('answers 404 for another device ID and M_MISSING_TOKEN without a token', async () => {
      const alice = await loggedIn(username, password);
      expect((await matrixError(alice.setDeviceDetails('NOSUCHDEVICE', { display_name: 'x' }))).httpStatus).toBe(404);
      const response = await fetch(`${base}/_matrix/client/v3/devices`);
      expect(response.status).toBe(401);
      expect(await response.json()).toMatchObject({ errcode: 'M_MISSING_TOKEN' });
      const bogus = await fetch(`${base}/_matrix/client/v3/account/whoami?access_token=bogus`);
      expect(bogus.status).toBe(401);
      expect(await bogus.json()).toMatchObject({ errcode: 'M_UNKNOWN_TOKEN', soft_logout: false });
    });

    it('logs out one session, then all sessions', async () => {
      const a = await loggedIn(username, password);
      const b = await loggedIn(username, password);
      await a.logout();
      expect((await matrixError(a.whoami())).errcode).toBe('M_UNKNOWN_TOKEN');
      expect((await b.whoami()).user_id).toBe(userId);
      const all = await fetch(`${base}/_matrix/client/v3/logout/all`, { method: 'POST', headers: { authorization: `Bearer ${b.getAccessToken()}` } });
      expect(all.status).toBe(200);
      expect((await matrixError(b.whoami())).errcode).toBe('M_UNKNOWN_TOKEN');
    });
  });

  describe('refresh tokens', () => {
    it('expire with soft_logout and refresh to a working token', async () => {
      const username = uniqueName('refresh');
      const registered = await registerUser(base, username, 'pw-123456', { refresh_token: true });
      expect(registered.refresh_token).toEqual(expect.any(String));
      expect(registered.expires_in_ms).toBe(1500);
      const sdk = client(base, { userId: registered.user_id, accessToken: registered.access_token! });
      await new Promise((r) => setTimeout(r, 1700));
      const expired = await matrixError(sdk.whoami());
      expect(expired.errcode).toBe('M_UNKNOWN_TOKEN');
      expect(expired.data.soft_logout).toBe(true);

      const refreshed = await client(base).refreshToken(registered.refresh_token!);
      expect(refreshed.access_token).not.toBe(registered.access_token);
      const again = client(base, { userId: registered.user_id, accessToken: refreshed.access_token });
      expect((await again.whoami()).device_id).toBe(registered.device_id);
      const reuse = await matrixError(client(base).refreshToken(registered.refresh_token!));
      expect(reuse.errcode).toBe('M_UNKNOWN_TOKEN');
    });
  });

  describe('password change and deactivation', () => {
    it('changes the password and logs out the other devices', async () => {
      const username = uniqueName('pwchange');
      const { user_id: userId } = await registerUser(base, username, 'old-password');
      const main = await loggedIn(username, 'old-password');
      const other = await loggedIn(username, 'old-password');
      const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password: 'old-password' };
      await main.setPassword(auth as never, 'new-password');
      expect((await main.whoami()).user_id).toBe(userId);
      expect((await matrixError(other.whoami())).errcode).toBe('M_UNKNOWN_TOKEN');
      expect((await matrixError(loggedIn(username, 'old-password'))).errcode).toBe('M_FORBIDDEN');
      await loggedIn(username, 'new-password');
    });

    it('deactivates an account for good', async () => {
      const username = uniqueName('deact');
      const { user_id: userId } = await registerUser(base, username, 'pw-123456');
      const sdk = await loggedIn(username, 'pw-123456');
      const result = await sdk.deactivateAccount({ type: 'm.login.password', identifier: { type: 'm.id.user', user: userId }, password: 'pw-123456' } as never);
      expect(result.id_server_unbind_result).toBe('no-support');
      expect((await matrixError(sdk.whoami())).errcode).toBe('M_UNKNOWN_TOKEN');
      const login = await matrixError(loggedIn(username, 'pw-123456'));
      expect(login.errcode).toBe('M_USER_DEACTIVATED');
      // matrix-js-sdk turns the 400 M_USER_IN_USE answer into `false`.
      expect(await client(base).isUsernameAvailable(username)).toBe(false);
    });
  });

  describe('server keys', () => {
    it('publishes a signing key and signs the response with it', async () => {
      const response = await fetch(`${base}/_matrix/key/v2/server`);
      expect(response.status).toBe(200);
      const body = (await response.json()) as {
        server_name: string;
        valid_until_ts: number;
        verify_keys: Record<string, { key: string }>;
        old_verify_keys: Record<string, unknown>;
        signatures: Record<string, Record<string, string>>;
      };
      expect(body.server_name).toBe(server.serverName);
      expect(body.valid_until_ts).toBeGreaterThan(Date.now() + 3600_000);
      expect(body.old_verify_keys).toEqual({});
      const [keyId] = Object.keys(body.verify_keys);
      expect(keyId).toMatch(/^ed25519:[A-Za-z0-9_]+$/);
      expect(body.signatures[server.serverName][keyId]).toEqual(expect.any(String));
      expect(verifyJsonSignature(body, server.serverName, keyId, body.verify_keys[keyId].key)).toBe(true);
      // Tampering breaks the signature.
      expect(verifyJsonSignature({ ...body, valid_until_ts: body.valid_until_ts + 1 }, server.serverName, keyId, body.verify_keys[keyId].key)).toBe(false);
    });
  });

  describe('rate limits', () => {
    it('answers 429 M_LIMIT_EXCEEDED with retry_after_ms and Retry-After once the login burst is spent', async () => {
      let limited: Response | undefined;
      for (let i = 0; i < 40 && !limited; i++) {
        const response = await fetch(`${base}/_matrix/client/v3/login`, {
          method: 'POST',
          body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: 'nobody' }, password: 'x' }),
        });
        if (response.status === 429) limited = response;
        else expect(response.status).toBe(403);
      }
      expect(limited).toBeDefined();
      const body = (await limited!.json()) as { errcode: string; retry_after_ms: number };
      expect(body.errcode).toBe('M_LIMIT_EXCEEDED');
      expect(body.retry_after_ms).toBeGreaterThan(0);
      expect(Number(limited!.headers.get('retry-after'))).toBeGreaterThan(0);
    });
  });
});
