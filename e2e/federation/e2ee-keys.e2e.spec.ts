/**
 * End-to-end encryption keys across two real Atrium servers federating over
 * TLS on 127.0.0.1 (issue 6; server-server-api "End-to-End Encryption" and
 * "Device Management", user_keys.yaml, user_devices.yaml; keys.yaml
 * `failures` and `timeout`; docs/federation-design.md "Remote device lists
 * and E2EE keys"). Users of A upload keys; users of B query and claim them
 * through their own server, which asks A over federation.
 */
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { ClientEvent, MsgType, Preset, type MatrixClient } from 'matrix-js-sdk';
import { parse as parseYaml } from 'yaml';
import { createTestCa, httpsJson, type TestCa } from '@atrium/test-servers';
import { FederationHttpError, HttpFederationClient, HttpsTransport, httpsWellKnownFetcher, IpRangeFilter, ServerNameResolver } from '@atrium/federation-client';
import { generateSigningKey, parseSigningKeyFile, signJson, type JsonObject } from '@atrium/matrix';
import { eventually, newUser, rawApi, rawSync, REGISTER_BURST_ENV, type Json, type TestUser } from '../support/fixtures';
import { client } from '../support/clients';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

const PASSWORD = 'pw-e2ee-fed-123';
const WAIT_MS = 30_000;
const enc = encodeURIComponent;
const modes = (process.env.ATRIUM_FEDERATION_MODES ?? 'embedded').split(',').map((m) => m.trim()) as Mode[];

/** Device keys of `user`'s device, self-signed as /keys/upload requires. */
function deviceKeys(user: TestUser): JsonObject {
  const key = generateSigningKey(user.deviceId);
  return signJson(
    {
      user_id: user.userId,
      device_id: user.deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`ed25519:${user.deviceId}`]: key.publicKeyBase64, [`curve25519:${user.deviceId}`]: `curve${user.deviceId}` },
    },
    user.userId,
    key,
  );
}

/** Master, self-signing and user-signing keys of `user`, the last two signed by the master key. */
function crossSigningKeys(user: TestUser): { master_key: JsonObject; self_signing_key: JsonObject; user_signing_key: JsonObject; sign(object: JsonObject): JsonObject } {
  const make = (usage: string) => {
    const k = generateSigningKey('x');
    return { k, keyId: `ed25519:${k.publicKeyBase64}`, body: { user_id: user.userId, usage: [usage], keys: { [`ed25519:${k.publicKeyBase64}`]: k.publicKeyBase64 } } as JsonObject };
  };
  const master = make('master');
  const ssk = make('self_signing');
  const usk = make('user_signing');
  return {
    master_key: master.body,
    self_signing_key: signJson(ssk.body, user.userId, master.keyId, master.k.privateKey),
    user_signing_key: signJson(usk.body, user.userId, master.keyId, master.k.privateKey),
    /** Signs with the user-signing key (another user's master key, as after verifying them). */
    sign: (object) => signJson(object, user.userId, usk.keyId, usk.k.privateKey),
  };
}

describe.each(modes)('E2EE keys between two Atrium servers (%s mode)', (mode) => {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;
  /** A TCP listener that accepts and never answers: a server that does not respond within the timeout. */
  let silent: Server;
  const silentSockets: Socket[] = [];
  let silentName: string;

  beforeAll(async () => {
    ca = createTestCa();
    const options = { federationTls: ca, env: REGISTER_BURST_ENV };
    [a, b] = await Promise.all([startTestServer(mode, options), startTestServer(mode, options)]);
    silent = createServer((socket) => silentSockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    silentName = `127.0.0.1:${(silent.address() as AddressInfo).port}`;
  }, 300_000);

  const started: MatrixClient[] = [];

  afterAll(async () => {
    for (const sdk of started) sdk.stopClient();
    for (const socket of silentSockets) socket.destroy();
    await new Promise<void>((resolve) => (silent ? silent.close(() => resolve()) : resolve()));
    await Promise.all([a?.stop(), b?.stop()]);
  });

  const api = (server: TestServer, user: TestUser, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> =>
    rawApi(server.baseUrl, user.token, method, path, body);

  /** A user of A with a named device, device keys, 3 one-time keys, a fallback key and cross-signing keys. */
  async function aliceWithKeys(): Promise<{ alice: TestUser; keys: JsonObject; cross: ReturnType<typeof crossSigningKeys> }> {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    expect((await api(a, alice, 'PUT', `/devices/${enc(alice.deviceId)}`, { display_name: 'Alice phone' })).status).toBe(200);
    const keys = deviceKeys(alice);
    const uploaded = await api(a, alice, 'POST', '/keys/upload', {
      device_keys: keys,
      one_time_keys: { 'signed_curve25519:AAAA': { key: 'otk1' }, 'signed_curve25519:AAAB': { key: 'otk2' }, 'signed_curve25519:AAAC': { key: 'otk3' } },
      fallback_keys: { 'signed_curve25519:FFFF': { key: 'fallback1', fallback: true } },
    });
    expect(uploaded.status).toBe(200);
    expect(uploaded.json.one_time_key_counts).toEqual({ signed_curve25519: 3 });
    const cross = crossSigningKeys(alice);
    expect((await api(a, alice, 'POST', '/keys/device_signing/upload', cross)).status).toBe(200);
    return { alice, keys, cross };
  }

  /** A federation client in the test process signing as server B (its key from its config), trusting the test CA. */
  function clientAsB(): { client: HttpFederationClient; close(): void } {
    const config = parseYaml(readFileSync(b.configPath, 'utf8')) as { signing_key_path: string };
    const [signingKey] = parseSigningKeyFile(readFileSync(config.signing_key_path, 'utf8'));
    const transport = new HttpsTransport({ extraCaPems: [readFileSync(ca.certPath, 'utf8')], ipFilter: new IpRangeFilter([], []) });
    const resolver = new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) });
    return { client: new HttpFederationClient({ serverName: b.serverName, signingKey, resolver, transport }), close: () => transport.close() };
  }

  it('a user of B queries the device and cross-signing keys of a user of A through B', async () => {
    const { alice, keys, cross } = await aliceWithKeys();
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);

    const q = await api(b, bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } });
    expect(q.status).toBe(200);
    expect(q.json.failures).toEqual({});
    const device = q.json.device_keys[alice.userId][alice.deviceId] as Json;
    // What alice uploaded, byte for byte in the signed part, plus the display name in `unsigned`.
    const { unsigned, ...signed } = device;
    expect(signed).toEqual(keys);
    expect(unsigned).toEqual({ device_display_name: 'Alice phone' });
    expect(q.json.master_keys[alice.userId]).toEqual(cross.master_key);
    expect(q.json.self_signing_keys[alice.userId]).toEqual(cross.self_signing_key);
    // The user-signing key is only for its owner; A never gives it to another server.
    expect(q.json.user_signing_keys[alice.userId]).toBeUndefined();

    // Asking for one device of alice's by ID, and for one she does not have.
    const one = await api(b, bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: [alice.deviceId, 'NOSUCHDEVICE'] } });
    expect(Object.keys(one.json.device_keys[alice.userId])).toEqual([alice.deviceId]);
    // An unknown user of a reachable server is missing, not a failure (keys.yaml).
    const unknown = await api(b, bob, 'POST', '/keys/query', { device_keys: { [`@nobody-here:${a.serverName}`]: [] } });
    expect(unknown.json.failures).toEqual({});
    expect(unknown.json.device_keys[`@nobody-here:${a.serverName}`] ?? {}).toEqual({});
  });

  it('a user of B claims one-time keys of a user of A, each once, then the fallback key', async () => {
    const { alice } = await aliceWithKeys();
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const claim = () => api(b, bob, 'POST', '/keys/claim', { one_time_keys: { [alice.userId]: { [alice.deviceId]: 'signed_curve25519' } } });

    const seen: string[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await claim();
      expect(c.status).toBe(200);
      expect(c.json.failures).toEqual({});
      const got = c.json.one_time_keys[alice.userId][alice.deviceId] as Json;
      const [keyId] = Object.keys(got);
      expect(keyId).toMatch(/^signed_curve25519:AAA[ABC]$/);
      seen.push(keyId);
    }
    expect(new Set(seen).size).toBe(3);
    // One-time keys used up: the fallback key, as often as asked.
    for (let i = 0; i < 2; i++) {
      const c = await claim();
      expect(c.json.one_time_keys[alice.userId][alice.deviceId]).toEqual({ 'signed_curve25519:FFFF': { key: 'fallback1', fallback: true } });
    }
    // A's count agrees: nothing left to claim.
    expect((await api(a, alice, 'POST', '/keys/upload', {})).json.one_time_key_counts).toEqual({ signed_curve25519: 0 });
  });

  it('an unreachable server and one that does not answer within `timeout` are listed in failures; the others answer', async () => {
    const { alice } = await aliceWithKeys();
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    // Port 1 of loopback: nothing listens, the connection is refused.
    const refused = '127.0.0.1:1';
    const started = Date.now();
    const q = await api(b, bob, 'POST', '/keys/query', {
      timeout: 2000,
      device_keys: { [alice.userId]: [], [`@ghost:${refused}`]: [], [`@mute:${silentName}`]: [] },
    });
    expect(q.status).toBe(200);
    expect(Object.keys(q.json.failures).sort()).toEqual([refused, silentName].sort());
    expect(Object.keys(q.json.device_keys[alice.userId])).toEqual([alice.deviceId]);
    // The silent server was given up on at about the timeout, not the default 10 s.
    expect(Date.now() - started).toBeLessThan(8000);

    const c = await api(b, bob, 'POST', '/keys/claim', {
      timeout: 2000,
      one_time_keys: { [alice.userId]: { [alice.deviceId]: 'signed_curve25519' }, [`@ghost:${refused}`]: { DEV: 'signed_curve25519' }, [`@mute:${silentName}`]: { DEV: 'signed_curve25519' } },
    });
    expect(c.status).toBe(200);
    expect(Object.keys(c.json.failures).sort()).toEqual([refused, silentName].sort());
    expect(Object.keys(c.json.one_time_keys[alice.userId][alice.deviceId])).toHaveLength(1);

    // A bad timeout is the client's error.
    expect((await api(b, bob, 'POST', '/keys/query', { timeout: 'soon', device_keys: {} })).status).toBe(400);
  });

  it('A serves /user/keys/query, /user/keys/claim and /user/devices to a signed request of B, for its own users only', async () => {
    const { alice, keys, cross } = await aliceWithKeys();
    const fed = clientAsB();
    try {
      const devices = await fed.client.request<Json>({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/user/devices/${enc(alice.userId)}` });
      expect(devices.user_id).toBe(alice.userId);
      expect(Number.isInteger(devices.stream_id)).toBe(true);
      expect(devices.devices).toEqual([{ device_id: alice.deviceId, keys: { ...keys, unsigned: { device_display_name: 'Alice phone' } }, device_display_name: 'Alice phone' }]);
      expect(devices.master_key).toEqual(cross.master_key);
      expect(devices.self_signing_key).toEqual(cross.self_signing_key);
      expect(devices.user_signing_key).toBeUndefined();

      const query = await fed.client.request<Json>({ destination: a.serverName, method: 'POST', path: '/_matrix/federation/v1/user/keys/query', body: { device_keys: { [alice.userId]: [] } } });
      expect(Object.keys(query.device_keys[alice.userId])).toEqual([alice.deviceId]);
      expect(query.master_keys[alice.userId]).toEqual(cross.master_key);
      expect(query.user_signing_keys).toBeUndefined();

      const claim = await fed.client.request<Json>({
        destination: a.serverName,
        method: 'POST',
        path: '/_matrix/federation/v1/user/keys/claim',
        body: { one_time_keys: { [alice.userId]: { [alice.deviceId]: 'signed_curve25519', NOSUCHDEVICE: 'signed_curve25519' } } },
      });
      expect(Object.keys(claim.one_time_keys[alice.userId])).toEqual([alice.deviceId]);

      // Users of another server: "Must be a user local to the receiving homeserver".
      const refusals: Array<Promise<unknown>> = [
        fed.client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/user/devices/${enc(`@bob:${b.serverName}`)}` }),
        fed.client.request({ destination: a.serverName, method: 'POST', path: '/_matrix/federation/v1/user/keys/query', body: { device_keys: { [`@bob:${b.serverName}`]: [] } } }),
        fed.client.request({ destination: a.serverName, method: 'POST', path: '/_matrix/federation/v1/user/keys/claim', body: { one_time_keys: { [`@bob:${b.serverName}`]: { D: 'signed_curve25519' } } } }),
        fed.client.request({ destination: a.serverName, method: 'POST', path: '/_matrix/federation/v1/user/keys/query', body: { device_keys: 'everyone' } }),
      ];
      for (const refusal of refusals) {
        const err = await refusal.then(() => undefined, (e: unknown) => e);
        expect(err).toBeInstanceOf(FederationHttpError);
        expect(err).toMatchObject({ status: 400 });
      }
      const badUser = await fed.client.request({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/user/devices/not-a-user` }).then(() => undefined, (e: unknown) => e);
      expect(badUser).toMatchObject({ status: 400, errcode: 'M_INVALID_PARAM' });
      // A local user with no account has no devices ("May be empty").
      const nobody = await fed.client.request<Json>({ destination: a.serverName, method: 'GET', path: `/_matrix/federation/v1/user/devices/${enc(`@nobody:${a.serverName}`)}` });
      expect(nobody).toMatchObject({ user_id: `@nobody:${a.serverName}`, devices: [] });
    } finally {
      fed.close();
    }
  });

  it('B keeps the list of a user of A it shares a room with: new and deleted devices arrive as m.device_list_update, signing keys as m.signing_key_update', async () => {
    const { alice } = await aliceWithKeys();
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const created = await api(a, alice, 'POST', '/createRoom', { preset: 'public_chat' });
    const roomId = created.json.room_id as string;
    const joined = await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect(joined).toMatchObject({ status: 200 });
    const devicesOfAlice = async (): Promise<string[]> => {
      const q = await api(b, bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } });
      expect(q.json.failures).toEqual({});
      return Object.keys(q.json.device_keys[alice.userId] ?? {}).sort();
    };
    // First query: B fetches alice's list (GET /user/devices) and caches it.
    expect(await devicesOfAlice()).toEqual([alice.deviceId]);
    let since = (await rawSync(b.baseUrl, bob.token)).next_batch as string;
    /** Waits until bob's /sync on B names alice in device_lists.changed. */
    const aliceChanged = (what: string) =>
      eventually(what, async () => {
        const s = await rawSync(b.baseUrl, bob.token, { since, timeout: 1000 });
        since = s.next_batch as string;
        return ((s.device_lists?.changed ?? []) as string[]).includes(alice.userId) ? true : undefined;
      }, WAIT_MS);

    // alice logs in a second device and uploads its keys: A sends the update, B applies it and tells bob.
    const login = await fetch(`${a.baseUrl}/_matrix/client/v3/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: alice.userId }, password: PASSWORD }),
    });
    const second = (await login.json()) as Json;
    const alice2: TestUser = { ...alice, token: second.access_token as string, deviceId: second.device_id as string };
    expect((await api(a, alice2, 'POST', '/keys/upload', { device_keys: deviceKeys(alice2) })).status).toBe(200);
    await aliceChanged('device_lists.changed for the new device on B');
    expect(await eventually('the new device in B\'s answer', async () => {
      const ids = await devicesOfAlice();
      return ids.length === 2 ? ids : undefined;
    }, WAIT_MS)).toEqual([alice.deviceId, alice2.deviceId].sort());

    // alice deletes the second device (password UIA): gone on B too.
    const first = await api(a, alice, 'DELETE', `/devices/${enc(alice2.deviceId)}`, {});
    expect(first.status).toBe(401);
    const auth = { type: 'm.login.password', identifier: { type: 'm.id.user', user: alice.userId }, password: PASSWORD, session: first.json.session };
    expect((await api(a, alice, 'DELETE', `/devices/${enc(alice2.deviceId)}`, { auth })).status).toBe(200);
    await aliceChanged('device_lists.changed for the deleted device on B');
    expect(await eventually('the deleted device gone from B\'s answer', async () => {
      const ids = await devicesOfAlice();
      return ids.length === 1 ? ids : undefined;
    }, WAIT_MS)).toEqual([alice.deviceId]);

    // New cross-signing keys (a reset, with UIA): B serves the new master key.
    const cross = crossSigningKeys(alice);
    const reset = await api(a, alice, 'POST', '/keys/device_signing/upload', cross);
    expect(reset.status).toBe(401);
    const authReset = { type: 'm.login.password', identifier: { type: 'm.id.user', user: alice.userId }, password: PASSWORD, session: reset.json.session };
    expect((await api(a, alice, 'POST', '/keys/device_signing/upload', { ...cross, auth: authReset })).status).toBe(200);
    await aliceChanged('device_lists.changed for the new signing keys on B');
    await eventually('the new master key on B', async () => {
      const q = await api(b, bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } });
      return JSON.stringify(q.json.master_keys[alice.userId]) === JSON.stringify(cross.master_key) ? true : undefined;
    }, WAIT_MS);
  });

  it('a user of B signs the master key of a user of A with their user-signing key: only they see the signature', async () => {
    const { alice } = await aliceWithKeys();
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const carol = await newUser(b.baseUrl, 'carol', PASSWORD);
    const bobCross = crossSigningKeys(bob);
    const { sign: _sign, ...bobUpload } = bobCross;
    expect((await api(b, bob, 'POST', '/keys/device_signing/upload', bobUpload)).status).toBe(200);
    const aliceMaster = (await api(b, bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } })).json.master_keys[alice.userId] as JsonObject;
    const masterId = Object.values(aliceMaster.keys as Json)[0] as string;

    // A forged signature and a key alice does not have are refused, each in `failures`.
    const forged = signJson(aliceMaster, bob.userId, `ed25519:${Object.values(bobUpload.user_signing_key.keys as Json)[0] as string}`, generateSigningKey('x').privateKey);
    const bad = await api(b, bob, 'POST', '/keys/signatures/upload', { [alice.userId]: { [masterId]: forged, NOTAKEY: bobCross.sign({ ...aliceMaster }) } });
    expect(bad.status).toBe(200);
    expect(bad.json.failures[alice.userId][masterId]).toMatchObject({ errcode: 'M_INVALID_SIGNATURE' });
    expect(bad.json.failures[alice.userId].NOTAKEY).toMatchObject({ errcode: 'M_NOT_FOUND' });

    const signed = bobCross.sign({ ...aliceMaster });
    const up = await api(b, bob, 'POST', '/keys/signatures/upload', { [alice.userId]: { [masterId]: signed } });
    expect(up).toMatchObject({ status: 200, json: { failures: {} } });
    const uskId = `ed25519:${Object.values(bobUpload.user_signing_key.keys as Json)[0] as string}`;
    const seenByBob = (await api(b, bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } })).json.master_keys[alice.userId] as Json;
    expect(seenByBob.signatures[bob.userId][uskId]).toBe((signed.signatures as Json)[bob.userId][uskId]);
    // Others (on B, and alice herself on A) do not see it.
    const seenByCarol = (await api(b, carol, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } })).json.master_keys[alice.userId] as Json;
    expect(seenByCarol.signatures?.[bob.userId]).toBeUndefined();
    const seenByAlice = (await api(a, alice, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } })).json.master_keys[alice.userId] as Json;
    expect(seenByAlice.signatures?.[bob.userId]).toBeUndefined();
  });

  it('an unsigned request to the federation key endpoints is refused with 401', async () => {
    const { alice } = await aliceWithKeys();
    const url = a.federationUrl as string;
    const devices = await httpsJson(`${url}/_matrix/federation/v1/user/devices/${enc(alice.userId)}`, { caPath: ca.certPath });
    expect(devices).toMatchObject({ status: 401, json: { errcode: 'M_UNAUTHORIZED' } });
    const query = await httpsJson(`${url}/_matrix/federation/v1/user/keys/query`, { method: 'POST', caPath: ca.certPath, body: { device_keys: { [alice.userId]: [] } } });
    expect(query).toMatchObject({ status: 401, json: { errcode: 'M_UNAUTHORIZED' } });
  });

  /** A started matrix-js-sdk client with Rust crypto in memory on `server`, after its first sync. */
  async function cryptoClient(server: TestServer, user: TestUser): Promise<MatrixClient> {
    const sdk = client(server.baseUrl, { userId: user.userId, accessToken: user.token, deviceId: user.deviceId });
    await sdk.initRustCrypto({ useIndexedDB: false });
    const prepared = new Promise<void>((resolve) => {
      sdk.on(ClientEvent.Sync, (state) => {
        if (state === 'PREPARED') resolve();
      });
    });
    started.push(sdk);
    await sdk.startClient({ initialSyncLimit: 20 });
    await prepared;
    return sdk;
  }

  /** Waits until `sdk` has the event decrypted, and gives its body. */
  async function decryptedBody(sdk: MatrixClient, roomId: string, eventId: string): Promise<string> {
    return eventually(`${sdk.getUserId()}/${sdk.getDeviceId()} decrypting ${eventId}`, async () => {
      const event = sdk.getRoom(roomId)?.findEventById(eventId);
      if (!event) return undefined;
      if (event.isBeingDecrypted() || event.isDecryptionFailure()) await sdk.decryptEventIfNeeded(event, { isRetry: true });
      const body = event.getClearContent()?.body;
      return event.getType() === 'm.room.message' && typeof body === 'string' ? body : undefined;
    }, WAIT_MS, 200);
  }

  it('matrix-js-sdk with Rust crypto: alice on A and bob on B in an encrypted room decrypt each other\'s messages', async () => {
    const alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    const bob = await newUser(b.baseUrl, 'bob', PASSWORD);
    const sa = await cryptoClient(a, alice);
    const sb = await cryptoClient(b, bob);

    const { room_id: roomId } = await sa.createRoom({
      preset: Preset.PublicChat,
      initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
    });
    const joined = await api(b, bob, 'POST', `/join/${enc(roomId)}?via=${enc(a.serverName)}`, {});
    expect(joined).toMatchObject({ status: 200 });
    await eventually('both clients see the encrypted room with both joined', () =>
      [sa, sb].every((c) => c.getRoom(roomId)?.hasEncryptionStateEvent() && c.getRoom(roomId)?.getMember(alice.userId)?.membership === 'join' && c.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join')
        ? true
        : undefined,
    WAIT_MS, 200);

    // alice's client fetches bob's keys through A (A asks B), claims a one-time key of bob's over federation,
    // and sends the room key to bob's device as an m.direct_to_device EDU.
    const fromAlice = await sa.sendMessage(roomId, { msgtype: MsgType.Text, body: 'secret from alice on A' });
    expect(await decryptedBody(sb, roomId, fromAlice.event_id)).toBe('secret from alice on A');

    const fromBob = await sb.sendMessage(roomId, { msgtype: MsgType.Text, body: 'secret from bob on B' });
    expect(await decryptedBody(sa, roomId, fromBob.event_id)).toBe('secret from bob on B');
  });
});
