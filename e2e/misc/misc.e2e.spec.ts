/**
 * The remaining Client-Server operations (issue 4, the misc and legacy
 * modules of apps/client-api): TURN credentials, OpenID tokens (and their
 * federation userinfo exchange), third-party lookups, whois, mutual rooms,
 * the documented answers of features this server does not offer (SSO, login
 * tokens, OAuth 2.0 metadata, application services, support and policy server
 * well-knowns), and the deprecated GET /events, /initialSync,
 * /rooms/{roomId}/initialSync and /events/{eventId}; the space hierarchy. Through matrix-js-sdk
 * where it has the call, raw fetch otherwise; both modes.
 *
 * Spec: data/api/client-server/voip.yaml, openid.yaml, third_party_lookup.yaml,
 * admin.yaml, mutual_rooms.yaml, sso_login_redirect.yaml, login_token.yaml,
 * oauth_server_metadata.yaml, appservice_ping.yaml, appservice_room_directory.yaml,
 * support.yaml, policy_server.yaml, old_sync.yaml, room_initial_sync.yaml,
 * peeking_events.yaml, space_hierarchy.yaml; server-server openid.yaml;
 * admin.yaml and client-server-api "Account moderation" (locking, suspension).
 */
import { createHmac } from 'node:crypto';
import { EventType, Preset, type MatrixClient } from 'matrix-js-sdk';
import { client, matrixError, registerUser, uniqueName } from '../support/clients';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

const modes: Mode[] = ['embedded', 'cluster'];
const TURN_SECRET = 'e2e-turn-secret';
const TURN_URIS = ['turn:turn.example.org:3478?transport=udp', 'turns:turn.example.org:5349?transport=tcp'];

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface User {
  userId: string;
  token: string;
  deviceId: string;
  sdk: MatrixClient;
}

describe.each(modes)('misc and legacy client-server endpoints (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: User;
  let bob: User;
  let carol: User;
  /** alice and bob joined, carol not; shared history. */
  let sharedRoom: string;
  /** alice alone, world_readable history. */
  let publicHistoryRoom: string;
  const enc = encodeURIComponent;

  async function newUser(prefix: string): Promise<User> {
    const response = await registerUser(base, uniqueName(prefix), 'pw-misc-12345');
    const creds = { userId: response.user_id, accessToken: response.access_token!, deviceId: response.device_id };
    return { userId: creds.userId, token: creds.accessToken, deviceId: creds.deviceId!, sdk: client(base, creds) };
  }

  async function raw(token: string | null, method: string, path: string, body?: unknown, prefix = '/_matrix/client/v3'): Promise<{ status: number; json: Json; headers: Headers }> {
    const headers: Record<string, string> = {};
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(`${base}${prefix}${path}`, { method, headers, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body), redirect: 'manual' });
    const text = await res.text();
    let json: Json = {};
    try {
      json = text ? (JSON.parse(text) as Json) : {};
    } catch {
      json = { text };
    }
    return { status: res.status, json, headers: res.headers };
  }

  const errcodeOf = (res: { status: number; json: Json }): [number, unknown] => [res.status, res.json.errcode];

  beforeAll(async () => {
    server = await startTestServer(mode, {
      env: {
        ATRIUM_RATE_LIMITS__REGISTER__BURST: '100',
        ATRIUM_RATE_LIMITS__REGISTER__PER_SECOND: '10',
        ATRIUM_VOIP__TURN_URIS: JSON.stringify(TURN_URIS),
        ATRIUM_VOIP__TURN_SHARED_SECRET: TURN_SECRET,
        ATRIUM_VOIP__TURN_USER_LIFETIME_MS: '3600000',
        ATRIUM_SUPPORT__CONTACTS: JSON.stringify([{ role: 'm.role.admin', email_address: 'admin@example.org' }]),
      },
    });
    base = server.baseUrl;
    [alice, bob, carol] = await Promise.all([newUser('alice'), newUser('bob'), newUser('carol')]);
    sharedRoom = (await alice.sdk.createRoom({ invite: [bob.userId], initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'shared' } }] })).room_id;
    await bob.sdk.joinRoom(sharedRoom);
    publicHistoryRoom = (await alice.sdk.createRoom({ initial_state: [{ type: 'm.room.history_visibility', state_key: '', content: { history_visibility: 'world_readable' } }] })).room_id;
  });

  afterAll(async () => {
    await server?.stop();
  });

  describe('GET /voip/turnServer', () => {
    it('gives TURN REST credentials for the configured URIs', async () => {
      const before = Math.floor(Date.now() / 1000);
      const turn = await alice.sdk.turnServer();
      expect(turn.uris).toEqual(TURN_URIS);
      expect(turn.ttl).toBe(3600);
      const [expiry, userId] = [turn.username.slice(0, turn.username.indexOf(':')), turn.username.slice(turn.username.indexOf(':') + 1)];
      expect(userId).toBe(alice.userId);
      expect(Number(expiry)).toBeGreaterThanOrEqual(before + 3600);
      expect(Number(expiry)).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000) + 3600);
      expect(turn.password).toBe(createHmac('sha1', TURN_SECRET).update(turn.username).digest('base64'));
    });

    it('gives guests credentials too (voip.turn_allow_guests defaults to true)', async () => {
      const guest = await raw(null, 'POST', '/register?kind=guest', {});
      expect(guest.status).toBe(200);
      const turn = await raw(guest.json.access_token as string, 'GET', '/voip/turnServer');
      expect(turn.status).toBe(200);
      expect((turn.json.username as string).endsWith(`:${guest.json.user_id as string}`)).toBe(true);
    });

    it('needs an access token', async () => {
      expect(errcodeOf(await raw(null, 'GET', '/voip/turnServer'))).toEqual([401, 'M_MISSING_TOKEN']);
      expect(errcodeOf(await raw('nope', 'GET', '/voip/turnServer'))).toEqual([401, 'M_UNKNOWN_TOKEN']);
    });
  });

  describe('OpenID', () => {
    const userInfo = (token: string | null): Promise<{ status: number; json: Json }> => {
      const federationBase = mode === 'embedded' ? server.services.federation : base;
      const query = token === null ? '' : `?access_token=${enc(token)}`;
      return fetch(`${federationBase}/_matrix/federation/v1/openid/userinfo${query}`).then(async (res) => ({ status: res.status, json: (await res.json()) as Json }));
    };

    it('issues a token that the federation userinfo exchanges for its owner', async () => {
      const token = await alice.sdk.getOpenIdToken();
      expect(token.token_type).toBe('Bearer');
      expect(token.matrix_server_name).toBe(server.serverName);
      expect(token.expires_in).toBe(3600);
      const info = await userInfo(token.access_token);
      expect(info).toEqual({ status: 200, json: { sub: alice.userId } });
    });

    it('the token is no access token, and an access token is no OpenID token', async () => {
      const token = await alice.sdk.getOpenIdToken();
      expect(errcodeOf(await raw(token.access_token, 'GET', '/account/whoami'))).toEqual([401, 'M_UNKNOWN_TOKEN']);
      expect(errcodeOf(await userInfo(alice.token))).toEqual([401, 'M_UNKNOWN_TOKEN']);
      expect(errcodeOf(await userInfo('oid_unknown'))).toEqual([401, 'M_UNKNOWN_TOKEN']);
      expect(errcodeOf(await userInfo(null))).toEqual([401, 'M_MISSING_TOKEN']);
    });

    it('refuses another user and a missing body', async () => {
      expect(errcodeOf(await raw(alice.token, 'POST', `/user/${enc(bob.userId)}/openid/request_token`, {}))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw(alice.token, 'POST', `/user/${enc(alice.userId)}/openid/request_token`, '[1]'))).toEqual([400, 'M_NOT_JSON']);
    });
  });

  describe('third-party networks (no bridges)', () => {
    it('lists no protocols and finds nothing', async () => {
      expect(await alice.sdk.getThirdpartyProtocols()).toEqual({});
      expect(errcodeOf(await raw(alice.token, 'GET', '/thirdparty/protocol/irc'))).toEqual([404, 'M_NOT_FOUND']);
      expect((await matrixError(alice.sdk.getThirdpartyLocation('irc', { searchFields: ['x'] }))).errcode).toBe('M_NOT_FOUND');
      expect((await matrixError(alice.sdk.getThirdpartyUser('irc', { nick: 'x' }))).errcode).toBe('M_NOT_FOUND');
      expect(await raw(alice.token, 'GET', `/thirdparty/location?alias=${enc('#a:example.org')}`)).toMatchObject({ status: 200, json: [] });
      expect(await raw(alice.token, 'GET', `/thirdparty/user?userid=${enc(bob.userId)}`)).toMatchObject({ status: 200, json: [] });
    });

    it('needs the lookup parameter and a token', async () => {
      expect(errcodeOf(await raw(alice.token, 'GET', '/thirdparty/location'))).toEqual([400, 'M_MISSING_PARAM']);
      expect(errcodeOf(await raw(alice.token, 'GET', '/thirdparty/user'))).toEqual([400, 'M_MISSING_PARAM']);
      expect(errcodeOf(await raw(null, 'GET', '/thirdparty/protocols'))).toEqual([401, 'M_MISSING_TOKEN']);
    });
  });

  describe('GET /admin/whois/{userId}', () => {
    it('answers for oneself with the devices', async () => {
      const res = await raw(alice.token, 'GET', `/admin/whois/${enc(alice.userId)}`);
      expect(res.status).toBe(200);
      expect(res.json.user_id).toBe(alice.userId);
      expect(Object.keys(res.json.devices)).toContain(alice.deviceId);
      const connections = res.json.devices[alice.deviceId].sessions[0].connections as Json[];
      for (const c of connections) expect(typeof c.last_seen).toBe('number');
    });

    it('refuses a non-admin asking about someone else, known or not', async () => {
      expect(errcodeOf(await raw(alice.token, 'GET', `/admin/whois/${enc(bob.userId)}`))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw(alice.token, 'GET', `/admin/whois/${enc('@nobody:example.org')}`))).toEqual([403, 'M_FORBIDDEN']);
    });
  });

  describe('GET /v1/mutual_rooms', () => {
    const mutual = (user: User, query: string) => raw(user.token, 'GET', `/mutual_rooms${query}`, undefined, '/_matrix/client/v1');

    it('lists the rooms both users joined', async () => {
      const res = await mutual(alice, `?user_id=${enc(bob.userId)}`);
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ joined: [sharedRoom], count: 1 });
      expect((await mutual(alice, `?user_id=${enc(carol.userId)}`)).json).toEqual({ joined: [], count: 0 });
      // "If the provided user_id is not a valid user, the server MUST return an empty list of rooms."
      expect((await mutual(alice, `?user_id=${enc('@ghost:example.org')}`)).json).toEqual({ joined: [], count: 0 });
      expect((await mutual(alice, `?user_id=${enc(bob.userId)}&from=${enc(sharedRoom)}`)).json).toEqual({ joined: [], count: 1 });
    });

    it('refuses a missing, invalid or own user ID and a bad from', async () => {
      expect(errcodeOf(await mutual(alice, ''))).toEqual([400, 'M_MISSING_PARAM']);
      expect(errcodeOf(await mutual(alice, '?user_id=bob'))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await mutual(alice, `?user_id=${enc(alice.userId)}`))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await mutual(alice, `?user_id=${enc(bob.userId)}&from=garbage`))).toEqual([400, 'M_INVALID_PARAM']);
    });
  });

  describe('features this server does not offer', () => {
    it('SSO: no redirect, unknown IdPs', async () => {
      expect(errcodeOf(await raw(null, 'GET', `/login/sso/redirect?redirectUrl=${enc('https://client.example.org/')}`))).toEqual([404, 'M_UNRECOGNIZED']);
      expect(errcodeOf(await raw(null, 'GET', '/login/sso/redirect'))).toEqual([400, 'M_MISSING_PARAM']);
      expect(errcodeOf(await raw(null, 'GET', `/login/sso/redirect/oidc-github?redirectUrl=${enc('https://client.example.org/')}`))).toEqual([404, 'M_NOT_FOUND']);
      // GET /login advertises no SSO flow, which is why.
      const flows = (await alice.sdk.loginFlows()).flows.map((f) => f.type);
      expect(flows).not.toContain('m.login.sso');
    });

    it('login tokens: disabled (capability false, 400)', async () => {
      const capabilities = await alice.sdk.getCapabilities();
      expect(capabilities['m.get_login_token']).toEqual({ enabled: false });
      expect(errcodeOf(await raw(alice.token, 'POST', '/login/get_token', {}, '/_matrix/client/v1'))).toEqual([400, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw(alice.token, 'POST', '/login/get_token', 'not json', '/_matrix/client/v1'))).toEqual([400, 'M_NOT_JSON']);
      expect(errcodeOf(await raw(null, 'POST', '/login/get_token', {}, '/_matrix/client/v1'))).toEqual([401, 'M_MISSING_TOKEN']);
    });

    it('OAuth 2.0 server metadata: 404 M_UNRECOGNIZED', async () => {
      expect(errcodeOf(await raw(null, 'GET', '/auth_metadata', undefined, '/_matrix/client/v1'))).toEqual([404, 'M_UNRECOGNIZED']);
    });

    it('application service endpoints refuse user tokens', async () => {
      expect(errcodeOf(await raw(alice.token, 'POST', '/appservice/telegram/ping', { transaction_id: 't1' }, '/_matrix/client/v1'))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw(null, 'POST', '/appservice/telegram/ping', {}, '/_matrix/client/v1'))).toEqual([401, 'M_MISSING_TOKEN']);
      expect(errcodeOf(await raw(alice.token, 'PUT', `/directory/list/appservice/irc/${enc(sharedRoom)}`, { visibility: 'public' }))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw('nope', 'PUT', `/directory/list/appservice/irc/${enc(sharedRoom)}`, { visibility: 'public' }))).toEqual([401, 'M_UNKNOWN_TOKEN']);
    });

    it('support well-known from the config; policy server well-known: 404', async () => {
      expect(await raw(null, 'GET', '/.well-known/matrix/support', undefined, '')).toMatchObject({ status: 200, json: { contacts: [{ role: 'm.role.admin', email_address: 'admin@example.org' }] } });
      // M_NOT_FOUND (served, nothing to give), not the M_UNRECOGNIZED of an unknown route.
      expect(errcodeOf(await raw(null, 'GET', '/.well-known/matrix/policy_server', undefined, ''))).toEqual([404, 'M_NOT_FOUND']);
    });
  });

  describe('GET /v1/rooms/{roomId}/hierarchy', () => {
    let space: string;
    let publicChild: string;
    let privateChild: string;
    const hierarchy = (user: User, roomId: string, query = '') => raw(user.token, 'GET', `/rooms/${enc(roomId)}/hierarchy${query}`, undefined, '/_matrix/client/v1');

    beforeAll(async () => {
      space = (await alice.sdk.createRoom({ preset: Preset.PublicChat, name: 'space', creation_content: { type: 'm.space' } })).room_id;
      publicChild = (await alice.sdk.createRoom({ preset: Preset.PublicChat, name: 'public child' })).room_id;
      privateChild = (await alice.sdk.createRoom({ preset: Preset.PrivateChat, name: 'private child' })).room_id;
      await alice.sdk.sendStateEvent(space, EventType.SpaceChild, { via: [server.serverName], order: 'b' }, privateChild);
      await alice.sdk.sendStateEvent(space, EventType.SpaceChild, { via: [server.serverName], order: 'a', suggested: true }, publicChild);
      // No via: not a child ("Invalid child rooms ... are not covered").
      await alice.sdk.sendStateEvent(space, EventType.SpaceChild, { via: [] }, sharedRoom);
    });

    it('walks the space depth-first in the children order, with summaries and children state', async () => {
      const result = await alice.sdk.getRoomHierarchy(space);
      expect(result.rooms.map((r) => r.room_id)).toEqual([space, publicChild, privateChild]);
      expect(result.next_batch).toBeUndefined();
      const root = result.rooms[0];
      expect(root).toMatchObject({ name: 'space', room_type: 'm.space', join_rule: 'public', num_joined_members: 1 });
      expect(root.children_state.map((c) => c.state_key).sort()).toEqual([publicChild, privateChild].sort());
      for (const c of root.children_state) expect(typeof c.origin_server_ts).toBe('number');
      expect(result.rooms[2].children_state).toEqual([]);
    });

    it('leaves out rooms the user may not see, and non-suggested ones with suggested_only', async () => {
      expect((await carol.sdk.getRoomHierarchy(space)).rooms.map((r) => r.room_id)).toEqual([space, publicChild]);
      expect((await alice.sdk.getRoomHierarchy(space, undefined, undefined, true)).rooms.map((r) => r.room_id)).toEqual([space, publicChild]);
      expect((await alice.sdk.getRoomHierarchy(space, undefined, 0)).rooms.map((r) => r.room_id)).toEqual([space]);
    });

    it('shows a restricted child to members of an allowed room only', async () => {
      const restricted = (
        await alice.sdk.createRoom({
          name: 'members only',
          initial_state: [{ type: 'm.room.join_rules', state_key: '', content: { join_rule: 'restricted', allow: [{ type: 'm.room_membership', room_id: space }] } }],
        })
      ).room_id;
      await alice.sdk.sendStateEvent(space, EventType.SpaceChild, { via: [server.serverName], order: 'c' }, restricted);
      expect((await bob.sdk.getRoomHierarchy(space)).rooms.map((r) => r.room_id)).toEqual([space, publicChild]);
      await bob.sdk.joinRoom(space);
      const seen = await bob.sdk.getRoomHierarchy(space);
      expect(seen.rooms.map((r) => r.room_id)).toEqual([space, publicChild, restricted]);
      expect(seen.rooms[2]).toMatchObject({ join_rule: 'restricted', allowed_room_ids: [space] });
      await alice.sdk.sendStateEvent(space, EventType.SpaceChild, {}, restricted);
    });

    it('paginates with next_batch', async () => {
      const first = await alice.sdk.getRoomHierarchy(space, 2);
      expect(first.rooms.map((r) => r.room_id)).toEqual([space, publicChild]);
      expect(first.next_batch).toBeDefined();
      const second = await alice.sdk.getRoomHierarchy(space, 2, undefined, false, first.next_batch);
      expect(second.rooms.map((r) => r.room_id)).toEqual([privateChild]);
      expect(second.next_batch).toBeUndefined();
      expect(errcodeOf(await hierarchy(alice, space, `?from=${enc(first.next_batch!)}&suggested_only=true`))).toEqual([400, 'M_INVALID_PARAM']);
    });

    it('refuses bad parameters and rooms the user may not view', async () => {
      expect(errcodeOf(await hierarchy(alice, space, '?limit=0'))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await hierarchy(alice, space, '?max_depth=-1'))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await hierarchy(alice, space, '?suggested_only=maybe'))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await hierarchy(alice, space, '?from=garbage'))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await hierarchy(carol, privateChild))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await hierarchy(alice, `!unknown:${server.serverName}`))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw(null, 'GET', `/rooms/${enc(space)}/hierarchy`, undefined, '/_matrix/client/v1'))).toEqual([401, 'M_MISSING_TOKEN']);
    });
  });

  describe('account moderation: GET/PUT /v1/admin/lock and /v1/admin/suspend', () => {
    let admin: User;
    let otherAdmin: User;
    let dave: User;
    let erin: User;
    const v1 = '/_matrix/client/v1';

    /** An administrator made with the CLI, as an operator does, then logged in. */
    async function newAdmin(prefix: string): Promise<User> {
      const localpart = uniqueName(prefix).toLowerCase();
      await server.cli(['register-user', '--user', localpart, '--password', 'pw-admin-12345', '--admin']);
      const login = await raw(null, 'POST', '/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: localpart }, password: 'pw-admin-12345' });
      expect(login.status).toBe(200);
      const creds = { userId: login.json.user_id as string, accessToken: login.json.access_token as string, deviceId: login.json.device_id as string };
      return { userId: creds.userId, token: creds.accessToken, deviceId: creds.deviceId, sdk: client(base, creds) };
    }

    beforeAll(async () => {
      [admin, otherAdmin, dave, erin] = await Promise.all([newAdmin('admin'), newAdmin('admin'), newUser('dave'), newUser('erin')]);
    });

    it('is for server administrators only, checked before any lookup', async () => {
      for (const target of [dave.userId, '@nobody:example.org']) {
        expect(errcodeOf(await raw(alice.token, 'GET', `/admin/lock/${enc(target)}`, undefined, v1))).toEqual([403, 'M_FORBIDDEN']);
        expect(errcodeOf(await raw(alice.token, 'PUT', `/admin/suspend/${enc(target)}`, { suspended: true }, v1))).toEqual([403, 'M_FORBIDDEN']);
      }
      expect(errcodeOf(await raw(null, 'GET', `/admin/lock/${enc(dave.userId)}`, undefined, v1))).toEqual([401, 'M_MISSING_TOKEN']);
      // Only administrators are told they may moderate accounts ("omitted altogether" otherwise).
      expect((await admin.sdk.fetchCapabilities())['m.account_moderation']).toEqual({ suspend: true, lock: true });
      expect((await alice.sdk.fetchCapabilities())['m.account_moderation']).toBeUndefined();
      // whois: an administrator may look up anyone.
      expect((await raw(admin.token, 'GET', `/admin/whois/${enc(dave.userId)}`)).json.user_id).toBe(dave.userId);
    });

    it('refuses remote, unknown, own and administrator targets and bad bodies', async () => {
      expect(errcodeOf(await raw(admin.token, 'GET', `/admin/lock/${enc('@x:example.org')}`, undefined, v1))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await raw(admin.token, 'GET', `/admin/suspend/${enc(`@nobody:${server.serverName}`)}`, undefined, v1))).toEqual([404, 'M_NOT_FOUND']);
      expect(errcodeOf(await raw(admin.token, 'PUT', `/admin/lock/${enc(admin.userId)}`, { locked: true }, v1))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw(admin.token, 'PUT', `/admin/suspend/${enc(otherAdmin.userId)}`, { suspended: true }, v1))).toEqual([403, 'M_FORBIDDEN']);
      expect(errcodeOf(await raw(admin.token, 'PUT', `/admin/lock/${enc(dave.userId)}`, {}, v1))).toEqual([400, 'M_MISSING_PARAM']);
      expect(errcodeOf(await raw(admin.token, 'PUT', `/admin/lock/${enc(dave.userId)}`, { locked: 'yes' }, v1))).toEqual([400, 'M_BAD_JSON']);
      expect((await raw(admin.token, 'GET', `/admin/lock/${enc(dave.userId)}`, undefined, v1)).json).toEqual({ locked: false });
    });

    it('a locked account gets 401 M_USER_LOCKED everywhere but logout, keeps its session, and is back when unlocked', async () => {
      expect(await raw(admin.token, 'PUT', `/admin/lock/${enc(dave.userId)}`, { locked: true }, v1)).toMatchObject({ status: 200, json: { locked: true } });
      expect((await raw(admin.token, 'GET', `/admin/lock/${enc(dave.userId)}`, undefined, v1)).json).toEqual({ locked: true });
      const whoami = await raw(dave.token, 'GET', '/account/whoami');
      expect([whoami.status, whoami.json.errcode, whoami.json.soft_logout]).toEqual([401, 'M_USER_LOCKED', true]);
      expect((await matrixError(dave.sdk.createRoom({}))).errcode).toBe('M_USER_LOCKED');
      const login = await raw(null, 'POST', '/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: dave.userId }, password: 'pw-misc-12345' });
      expect(errcodeOf(login)).toEqual([401, 'M_USER_LOCKED']);
      expect(await raw(admin.token, 'PUT', `/admin/lock/${enc(dave.userId)}`, { locked: false }, v1)).toMatchObject({ status: 200, json: { locked: false } });
      expect((await raw(dave.token, 'GET', '/account/whoami')).json.user_id).toBe(dave.userId);
      // Logout stays open to a locked account.
      await raw(admin.token, 'PUT', `/admin/lock/${enc(erin.userId)}`, { locked: true }, v1);
      expect((await raw(erin.token, 'POST', '/logout', {})).status).toBe(200);
    });

    it('a suspended account reads and leaves but does not send, join, create or change its profile', async () => {
      const roomId = (await dave.sdk.createRoom({})).room_id;
      const { event_id: own } = await dave.sdk.sendTextMessage(roomId, 'before');
      expect(await raw(admin.token, 'PUT', `/admin/suspend/${enc(dave.userId)}`, { suspended: true }, v1)).toMatchObject({ status: 200, json: { suspended: true } });
      expect((await raw(admin.token, 'GET', `/admin/suspend/${enc(dave.userId)}`, undefined, v1)).json).toEqual({ suspended: true });
      expect((await matrixError(dave.sdk.sendTextMessage(roomId, 'during'))).errcode).toBe('M_USER_SUSPENDED');
      expect((await matrixError(dave.sdk.createRoom({}))).errcode).toBe('M_USER_SUSPENDED');
      expect((await matrixError(dave.sdk.joinRoom(publicHistoryRoom))).errcode).toBe('M_USER_SUSPENDED');
      expect((await matrixError(dave.sdk.setDisplayName('new name'))).errcode).toBe('M_USER_SUSPENDED');
      expect((await raw(dave.token, 'GET', '/sync?timeout=0')).status).toBe(200);
      expect((await raw(dave.token, 'GET', `/rooms/${enc(roomId)}/messages?dir=b&limit=5`)).status).toBe(200);
      // Redacting one's own events stays open.
      expect((await raw(dave.token, 'PUT', `/rooms/${enc(roomId)}/redact/${enc(own)}/${uniqueName('r')}`, {})).status).toBe(200);
      expect(await raw(admin.token, 'PUT', `/admin/suspend/${enc(dave.userId)}`, { suspended: false }, v1)).toMatchObject({ status: 200, json: { suspended: false } });
      expect((await dave.sdk.sendTextMessage(roomId, 'after')).event_id).toMatch(/^\$/);
      await raw(admin.token, 'PUT', `/admin/suspend/${enc(dave.userId)}`, { suspended: true }, v1);
      expect((await raw(dave.token, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
    });
  });

  describe('deprecated pre-/sync endpoints', () => {
    it('GET /events/{eventId}: a visible event; 404 for others', async () => {
      const { event_id: eventId } = await alice.sdk.sendTextMessage(sharedRoom, 'legacy one');
      const res = await raw(bob.token, 'GET', `/events/${enc(eventId)}`);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ event_id: eventId, room_id: sharedRoom, sender: alice.userId, content: { body: 'legacy one' } });
      expect(errcodeOf(await raw(carol.token, 'GET', `/events/${enc(eventId)}`))).toEqual([404, 'M_NOT_FOUND']);
      expect(errcodeOf(await raw(bob.token, 'GET', `/events/${enc('$nope')}`))).toEqual([404, 'M_NOT_FOUND']);
      // world_readable history: anyone may read.
      const { event_id: open } = await alice.sdk.sendTextMessage(publicHistoryRoom, 'for all');
      expect((await raw(carol.token, 'GET', `/events/${enc(open)}`)).json.event_id).toBe(open);
    });

    it('GET /rooms/{roomId}/initialSync: state and latest messages', async () => {
      await alice.sdk.sendTextMessage(sharedRoom, 'room initial sync');
      const info = await bob.sdk.roomInitialSync(sharedRoom, 5);
      expect(info.room_id).toBe(sharedRoom);
      expect(info.membership).toBe('join');
      expect(info.messages!.chunk.length).toBeLessThanOrEqual(5);
      expect(info.messages!.chunk[info.messages!.chunk.length - 1]).toMatchObject({ content: { body: 'room initial sync' } });
      expect(info.state!.map((e) => e.type)).toEqual(expect.arrayContaining(['m.room.create', 'm.room.member', 'm.room.history_visibility']));
      // Its `start` pages back with /messages.
      const older = await raw(bob.token, 'GET', `/rooms/${enc(sharedRoom)}/messages?dir=b&limit=3&from=${enc(info.messages!.start!)}`);
      expect(older.status).toBe(200);
      expect(older.json.chunk.length).toBeGreaterThan(0);
      // Not a member: 403; peeking a world_readable room: allowed.
      expect(errcodeOf(await raw(carol.token, 'GET', `/rooms/${enc(sharedRoom)}/initialSync`))).toEqual([403, 'M_FORBIDDEN']);
      expect((await raw(carol.token, 'GET', `/rooms/${enc(publicHistoryRoom)}/initialSync`)).json.room_id).toBe(publicHistoryRoom);
      expect(errcodeOf(await raw(bob.token, 'GET', `/rooms/${enc(sharedRoom)}/initialSync?limit=-1`))).toEqual([400, 'M_INVALID_PARAM']);
    });

    it('GET /initialSync then GET /events: the rooms, then new events as they come', async () => {
      const initial = await raw(bob.token, 'GET', '/initialSync?limit=2');
      expect(initial.status).toBe(200);
      expect(Array.isArray(initial.json.presence)).toBe(true);
      const room = (initial.json.rooms as Json[]).find((r) => r.room_id === sharedRoom);
      expect(room).toMatchObject({ membership: 'join' });
      expect(room!.messages.chunk.length).toBeLessThanOrEqual(2);
      expect((initial.json.rooms as Json[]).some((r) => r.room_id === publicHistoryRoom)).toBe(false);

      // Nothing new: an empty chunk after the timeout, end unchanged.
      const idle = await raw(bob.token, 'GET', `/events?from=${enc(initial.json.end)}&timeout=50`);
      expect(idle.status).toBe(200);
      expect(idle.json).toMatchObject({ start: initial.json.end, chunk: [] });

      // A long-poll wakes on a new event.
      const waiting = raw(bob.token, 'GET', `/events?from=${enc(idle.json.end)}&timeout=20000`);
      await new Promise((r) => setTimeout(r, 200));
      const { event_id: eventId } = await alice.sdk.sendTextMessage(sharedRoom, 'live');
      const woke = await waiting;
      expect(woke.status).toBe(200);
      expect((woke.json.chunk as Json[]).map((e) => e.event_id)).toContain(eventId);
      const after = await raw(bob.token, 'GET', `/events?from=${enc(woke.json.end)}&timeout=0`);
      expect(after.json.chunk).toEqual([]);
    });

    it('GET /events?room_id: peeks into a world_readable room only', async () => {
      const start = (await raw(carol.token, 'GET', `/events?room_id=${enc(publicHistoryRoom)}&timeout=0`)).json.end as string;
      const { event_id: eventId } = await alice.sdk.sendTextMessage(publicHistoryRoom, 'peek');
      const peeked = await raw(carol.token, 'GET', `/events?room_id=${enc(publicHistoryRoom)}&from=${enc(start)}&timeout=10000`);
      expect((peeked.json.chunk as Json[]).map((e) => e.event_id)).toContain(eventId);
      expect(errcodeOf(await raw(carol.token, 'GET', `/events?room_id=${enc(sharedRoom)}&timeout=0`))).toEqual([403, 'M_FORBIDDEN']);
    });

    it('GET /events refuses a bad from', async () => {
      expect(errcodeOf(await raw(bob.token, 'GET', '/events?from=garbage&timeout=0'))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await raw(bob.token, 'GET', '/events?from=s999999999&timeout=0'))).toEqual([400, 'M_INVALID_PARAM']);
      expect(errcodeOf(await raw(bob.token, 'GET', '/events?timeout=x'))).toEqual([400, 'M_INVALID_PARAM']);
    });
  });
});
