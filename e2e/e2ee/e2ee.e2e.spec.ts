/**
 * End-to-end encryption against a running server, in both modes (issue 6,
 * single server): matrix-js-sdk clients with the Rust crypto stack
 * (`initRustCrypto({ useIndexedDB: false })`) upload device and one-time
 * keys, track device lists through /sync, claim keys and share Megolm
 * sessions over to-device; every other device decrypts; a device logged in
 * later is seen through `device_lists` and decrypts what is sent after.
 * Raw HTTP covers bad input (keys.yaml, cross_signing.yaml, key_backup.yaml).
 * Spec: modules/end_to_end_encryption.md.
 */
import { ClientEvent, MsgType, Preset, type MatrixClient } from 'matrix-js-sdk';
import { generateSigningKey, signJson } from '@atrium/matrix';
import { startTestServer, type Mode, type TestServer } from '../support/servers';
import { client, registerUser, uniqueName } from '../support/clients';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-e2ee-123';
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Session {
  userId: string;
  deviceId: string;
  token: string;
}

/** Polls `check` every 100 ms until it returns a value, at most `ms`. */
async function eventually<T>(what: string, check: () => T | undefined | Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const value = await check();
    if (value !== undefined) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe.each(modes)('e2ee (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  const started: MatrixClient[] = [];

  async function api(token: string | null, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(`${base}/_matrix/client/v3${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await res.text();
    return { status: res.status, json: text ? (JSON.parse(text) as Json) : {} };
  }

  async function register(prefix: string): Promise<Session & { localpart: string }> {
    const localpart = uniqueName(prefix);
    const r = await registerUser(base, localpart, PASSWORD);
    return { userId: r.user_id, deviceId: r.device_id!, token: r.access_token!, localpart };
  }

  async function login(localpart: string): Promise<Session> {
    const r = await api(null, 'POST', '/login', { type: 'm.login.password', identifier: { type: 'm.id.user', user: localpart }, password: PASSWORD });
    expect(r.status).toBe(200);
    return { userId: r.json.user_id, deviceId: r.json.device_id, token: r.json.access_token };
  }

  /** A started SDK client with Rust crypto in memory, after its first sync. */
  async function cryptoClient(session: Session): Promise<MatrixClient> {
    const sdk = client(base, { userId: session.userId, accessToken: session.token, deviceId: session.deviceId });
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
      if (event.isBeingDecrypted() || event.isDecryptionFailure()) {
        // A key may arrive after the event: ask the SDK to try again.
        await sdk.decryptEventIfNeeded(event, { isRetry: true });
      }
      const body = event.getClearContent()?.body;
      return event.getType() === 'm.room.message' && typeof body === 'string' ? body : undefined;
    });
  }

  beforeAll(async () => {
    server = await startTestServer(mode, { env: { ATRIUM_RATE_LIMITS__REGISTER__BURST: '100', ATRIUM_RATE_LIMITS__REGISTER__PER_SECOND: '10' } });
    base = server.baseUrl;
  });

  afterAll(async () => {
    for (const sdk of started) sdk.stopClient();
    await server?.stop();
  });

  describe('raw HTTP', () => {
    let user: Session;
    const signed = (session: Session, extra: Json = {}) => {
      const key = generateSigningKey(session.deviceId);
      return signJson(
        { user_id: session.userId, device_id: session.deviceId, algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'], keys: { [`ed25519:${session.deviceId}`]: key.publicKeyBase64, [`curve25519:${session.deviceId}`]: 'Y3VydmU', ...extra } },
        session.userId,
        key,
      );
    };

    beforeAll(async () => {
      user = await register('raw');
    });

    it('uploads, queries and claims keys, and counts them', async () => {
      const up = await api(user.token, 'POST', '/keys/upload', {
        device_keys: signed(user),
        one_time_keys: { 'signed_curve25519:AAAA': { key: 'a1' }, 'signed_curve25519:AAAB': { key: 'a2' } },
        fallback_keys: { 'signed_curve25519:FFFF': { key: 'f1', fallback: true } },
      });
      expect(up.status).toBe(200);
      expect(up.json.one_time_key_counts).toEqual({ signed_curve25519: 2 });
      // The same key again is an idempotent retry.
      expect((await api(user.token, 'POST', '/keys/upload', { one_time_keys: { 'signed_curve25519:AAAA': { key: 'a1' } } })).json.one_time_key_counts).toEqual({ signed_curve25519: 2 });

      const q = await api(user.token, 'POST', '/keys/query', { device_keys: { [user.userId]: [], '@someone:elsewhere.example': [] } });
      expect(q.status).toBe(200);
      expect(Object.keys(q.json.device_keys[user.userId])).toEqual([user.deviceId]);
      expect(q.json.failures['elsewhere.example']).toBeDefined();
      // The unstable prefix (routed to key-server in the cluster) answers the same.
      const unstable = await fetch(`${base}/_matrix/client/unstable/keys/query`, {
        method: 'POST',
        headers: { authorization: `Bearer ${user.token}`, 'content-type': 'application/json' },
        body: JSON.stringify({ device_keys: { [user.userId]: [] } }),
      });
      expect(unstable.status).toBe(200);
      expect(Object.keys(((await unstable.json()) as Json).device_keys[user.userId])).toEqual([user.deviceId]);

      const claims: string[] = [];
      for (let i = 0; i < 3; i++) {
        const c = await api(user.token, 'POST', '/keys/claim', { one_time_keys: { [user.userId]: { [user.deviceId]: 'signed_curve25519' } } });
        expect(c.status).toBe(200);
        claims.push(...Object.keys(c.json.one_time_keys[user.userId][user.deviceId]));
      }
      // Two one-time keys, then the fallback key.
      expect(claims.sort()).toEqual(['signed_curve25519:AAAA', 'signed_curve25519:AAAB', 'signed_curve25519:FFFF']);
      const sync = await api(user.token, 'GET', '/sync?timeout=0');
      expect(sync.json.device_one_time_keys_count).toEqual({ signed_curve25519: 0 });
      expect(sync.json.device_unused_fallback_key_types).toEqual([]);
    });

    it('refuses bad device keys and a re-used one-time key ID, changing nothing', async () => {
      const other = await register('rawbad');
      const mismatched = await api(other.token, 'POST', '/keys/upload', { device_keys: { ...signed(other), user_id: user.userId } });
      expect(mismatched.status).toBe(400);
      const bad = signed(other);
      const badSig = await api(other.token, 'POST', '/keys/upload', { device_keys: { ...bad, algorithms: ['m.megolm.v1.aes-sha2'] } });
      expect(badSig.status).toBe(400);
      expect((await api(other.token, 'POST', '/keys/upload', { device_keys: 'nope' })).status).toBe(400);

      expect((await api(other.token, 'POST', '/keys/upload', { one_time_keys: { 'signed_curve25519:K1': { key: 'one' } } })).status).toBe(200);
      const reused = await api(other.token, 'POST', '/keys/upload', { one_time_keys: { 'signed_curve25519:K1': { key: 'two' }, 'signed_curve25519:K2': { key: 'new' } } });
      expect(reused.status).toBe(400);
      expect(reused.json.errcode).toBe('M_INVALID_PARAM');
      const q = await api(other.token, 'POST', '/keys/query', { device_keys: { [other.userId]: [] } });
      expect(q.json.device_keys[other.userId]).toEqual({});
      const counts = await api(other.token, 'POST', '/keys/upload', {});
      expect(counts.json.one_time_key_counts).toEqual({ signed_curve25519: 1 });
    });

    it('cross-signing: first upload without UIA, replacement with it; user_signing only for oneself', async () => {
      const owner = await register('xs');
      const viewer = await register('xsv');
      const mk = (usage: string) => {
        const k = generateSigningKey('x');
        const keyId = `ed25519:${k.publicKeyBase64}`;
        return { k, keyId, body: { user_id: owner.userId, usage: [usage], keys: { [keyId]: k.publicKeyBase64 } } };
      };
      const master = mk('master');
      const ssk = mk('self_signing');
      const usk = mk('user_signing');
      const body = {
        master_key: master.body,
        self_signing_key: signJson(ssk.body, owner.userId, master.keyId, master.k.privateKey),
        user_signing_key: signJson(usk.body, owner.userId, master.keyId, master.k.privateKey),
      };
      expect((await api(owner.token, 'POST', '/keys/device_signing/upload', { ...body, self_signing_key: ssk.body })).status).toBe(400);
      expect((await api(owner.token, 'POST', '/keys/device_signing/upload', body)).status).toBe(200);
      // The same keys again: no UIA (cross_signing.yaml).
      expect((await api(owner.token, 'POST', '/keys/device_signing/upload', body)).status).toBe(200);
      const replace = { master_key: mk('master').body };
      const challenge = await api(owner.token, 'POST', '/keys/device_signing/upload', replace);
      expect(challenge.status).toBe(401);
      expect(challenge.json.flows).toBeDefined();
      const ok = await api(owner.token, 'POST', '/keys/device_signing/upload', {
        ...replace,
        auth: { type: 'm.login.password', session: challenge.json.session, identifier: { type: 'm.id.user', user: owner.localpart }, password: PASSWORD },
      });
      expect(ok.status).toBe(200);

      const own = await api(owner.token, 'POST', '/keys/query', { device_keys: { [owner.userId]: [] } });
      expect(own.json.master_keys[owner.userId].keys).toEqual(replace.master_key.keys);
      expect(own.json.user_signing_keys[owner.userId]).toBeDefined();
      const seen = await api(viewer.token, 'POST', '/keys/query', { device_keys: { [owner.userId]: [] } });
      expect(seen.json.self_signing_keys[owner.userId]).toBeDefined();
      expect(seen.json.user_signing_keys[owner.userId]).toBeUndefined();

      // A signature of a key that does not exist fails per key.
      const sig = await api(owner.token, 'POST', '/keys/signatures/upload', { [owner.userId]: { NOSUCHDEVICE: { signatures: { [owner.userId]: { 'ed25519:x': 'y' } } } } });
      expect(sig.status).toBe(200);
      expect(sig.json.failures[owner.userId].NOSUCHDEVICE.errcode).toBeDefined();
      // Malformed bodies: 400, never a 500.
      expect((await api(owner.token, 'POST', '/keys/signatures/upload', { [owner.userId]: 'not an object' })).status).toBe(400);
      expect((await api(owner.token, 'POST', '/keys/query', { device_keys: { [owner.userId]: 'x' } })).status).toBe(400);
      expect((await api(owner.token, 'POST', '/keys/claim', { one_time_keys: { [owner.userId]: { D: 5 } } })).status).toBe(400);
      expect((await api(owner.token, 'POST', '/keys/device_signing/upload', { master_key: { user_id: viewer.userId, usage: ['master'], keys: {} } })).status).toBe(400);
    });

    it('device_lists in /sync and /keys/changes: joins, key changes, a deleted device, leaves', async () => {
      const watcher = await register('watch');
      const other = await register('other');
      const since0 = (await api(watcher.token, 'GET', '/sync?timeout=0')).json.next_batch as string;
      const created = await api(watcher.token, 'POST', '/createRoom', { preset: 'private_chat', invite: [other.userId] });
      const roomId = created.json.room_id as string;
      expect((await api(other.token, 'POST', `/rooms/${encodeURIComponent(roomId)}/join`, {})).status).toBe(200);

      // Bounded incremental syncs until `check` holds for the response.
      let since = since0;
      const syncUntil = (what: string, check: (body: Json) => boolean) =>
        eventually(what, async () => {
          const r = await api(watcher.token, 'GET', `/sync?timeout=1000&since=${encodeURIComponent(since)}`);
          expect(r.status).toBe(200);
          since = r.json.next_batch;
          return check(r.json) ? r.json : undefined;
        });
      await syncUntil('other in changed after joining', (b) => b.device_lists?.changed?.includes(other.userId) === true);

      const second = await login(other.localpart);
      expect((await api(second.token, 'POST', '/keys/upload', { device_keys: signed(second) })).status).toBe(200);
      await syncUntil('other in changed after a key upload', (b) => b.device_lists?.changed?.includes(other.userId) === true);
      const changes = await api(watcher.token, 'GET', `/keys/changes?from=${encodeURIComponent(since0)}&to=${encodeURIComponent(since)}`);
      expect(changes.status).toBe(200);
      expect(changes.json.changed).toContain(other.userId);
      expect((await api(watcher.token, 'GET', '/keys/changes?from=nope&to=s1')).status).toBe(400);
      const listed = await api(watcher.token, 'POST', '/keys/query', { device_keys: { [other.userId]: [] } });
      expect(Object.keys(listed.json.device_keys[other.userId])).toEqual([second.deviceId]);

      // Deleting the device (UIA) removes its keys and tells the watcher.
      const challenge = await api(other.token, 'DELETE', `/devices/${second.deviceId}`, {});
      expect(challenge.status).toBe(401);
      const deleted = await api(other.token, 'DELETE', `/devices/${second.deviceId}`, {
        auth: { type: 'm.login.password', session: challenge.json.session, identifier: { type: 'm.id.user', user: other.localpart }, password: PASSWORD },
      });
      expect(deleted.status).toBe(200);
      expect(Object.keys((await api(watcher.token, 'POST', '/keys/query', { device_keys: { [other.userId]: [] } })).json.device_keys[other.userId])).toEqual([]);
      await syncUntil('other in changed after the device went', (b) => b.device_lists?.changed?.includes(other.userId) === true);

      expect((await api(other.token, 'POST', `/rooms/${encodeURIComponent(roomId)}/leave`, {})).status).toBe(200);
      const leftBody = await syncUntil('other in left', (b) => b.device_lists?.left?.includes(other.userId) === true);
      expect(leftBody.device_lists.changed ?? []).not.toContain(other.userId);
    });

    it('key backup: versions, the better key wins, etag and count, wrong version', async () => {
      const u = await register('backup');
      expect((await api(u.token, 'GET', '/room_keys/version')).status).toBe(404);
      const created = await api(u.token, 'POST', '/room_keys/version', { algorithm: 'm.megolm_backup.v1.curve25519-aes-sha2', auth_data: { public_key: 'abc' } });
      expect(created.status).toBe(200);
      const version = created.json.version as string;
      const data = (fmi: number, fc: number, verified: boolean, tag: string) => ({ first_message_index: fmi, forwarded_count: fc, is_verified: verified, session_data: { tag } });
      const room = encodeURIComponent('!r:example');
      const put1 = await api(u.token, 'PUT', `/room_keys/keys/${room}/s1?version=${version}`, data(5, 0, false, 'first'));
      expect(put1.status).toBe(200);
      expect(put1.json.count).toBe(1);
      // Worse (higher first_message_index): kept out; better (verified): replaces.
      await api(u.token, 'PUT', `/room_keys/keys/${room}?version=${version}`, { sessions: { s1: data(9, 0, false, 'worse') } });
      expect((await api(u.token, 'GET', `/room_keys/keys/${room}/s1?version=${version}`)).json.session_data.tag).toBe('first');
      const better = await api(u.token, 'PUT', `/room_keys/keys?version=${version}`, { rooms: { '!r:example': { sessions: { s1: data(7, 1, true, 'better'), s2: data(0, 0, false, 'two') } } } });
      expect(better.json.count).toBe(2);
      expect(better.json.etag).not.toBe(put1.json.etag);
      expect((await api(u.token, 'GET', `/room_keys/keys?version=${version}`)).json.rooms['!r:example'].sessions.s1.session_data.tag).toBe('better');
      const info = await api(u.token, 'GET', '/room_keys/version');
      expect(info.json).toMatchObject({ version, count: 2, etag: better.json.etag });

      const wrong = await api(u.token, 'PUT', `/room_keys/keys/${room}/s3?version=999999`, data(0, 0, false, 'x'));
      expect(wrong.status).toBe(403);
      expect(wrong.json).toMatchObject({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', current_version: version });
      expect((await api(u.token, 'GET', '/room_keys/keys?version=999999')).status).toBe(404);
      expect((await api(u.token, 'PUT', `/room_keys/keys/${room}/s3?version=${version}`, { first_message_index: 'x' })).status).toBe(400);

      const del = await api(u.token, 'DELETE', `/room_keys/keys/${room}/s2?version=${version}`);
      expect(del.json.count).toBe(1);
      expect((await api(u.token, 'DELETE', `/room_keys/version/${version}`)).status).toBe(200);
      expect((await api(u.token, 'GET', `/room_keys/version/${version}`)).status).toBe(404);
    });
  });

  describe('matrix-js-sdk with Rust crypto', () => {
    it('alice (two devices) and bob decrypt each other; a device added later is tracked and decrypts', async () => {
      const alice1 = await register('alice');
      const alice2 = await login(alice1.localpart);
      const bob = await register('bob');
      const a1 = await cryptoClient(alice1);
      const a2 = await cryptoClient(alice2);
      const b = await cryptoClient(bob);

      const { room_id: roomId } = await a1.createRoom({
        preset: Preset.PrivateChat,
        invite: [bob.userId],
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      });
      await eventually('bob invited', () => (b.getRoom(roomId)?.getMyMembership() === 'invite' ? true : undefined));
      await b.joinRoom(roomId);
      await eventually('every client sees the room encrypted with bob joined', () =>
        [a1, a2, b].every((c) => c.getRoom(roomId)?.hasEncryptionStateEvent() && c.getRoom(roomId)?.getMember(bob.userId)?.membership === 'join') ? true : undefined,
      );

      const fromAlice = await a1.sendMessage(roomId, { msgtype: MsgType.Text, body: 'secret from alice' });
      expect(await decryptedBody(a2, roomId, fromAlice.event_id)).toBe('secret from alice');
      expect(await decryptedBody(b, roomId, fromAlice.event_id)).toBe('secret from alice');

      const fromBob = await b.sendMessage(roomId, { msgtype: MsgType.Text, body: 'secret from bob' });
      expect(await decryptedBody(a1, roomId, fromBob.event_id)).toBe('secret from bob');
      expect(await decryptedBody(a2, roomId, fromBob.event_id)).toBe('secret from bob');

      // A third device of alice: bob learns of it through device_lists and shares the next session with it.
      const alice3 = await login(alice1.localpart);
      const a3 = await cryptoClient(alice3);
      await eventually('bob sees alice3', async () => {
        const devices = await b.getCrypto()!.getUserDeviceInfo([alice1.userId]);
        return devices.get(alice1.userId)?.has(alice3.deviceId) ? true : undefined;
      });
      await eventually('alice3 sees the room', () => (a3.getRoom(roomId) ? true : undefined));
      const later = await b.sendMessage(roomId, { msgtype: MsgType.Text, body: 'after alice3 arrived' });
      expect(await decryptedBody(a3, roomId, later.event_id)).toBe('after alice3 arrived');
      expect(await decryptedBody(a1, roomId, later.event_id)).toBe('after alice3 arrived');
    });

    it('cross-signing and key backup set up by the SDK: signatures accepted, room keys backed up', async () => {
      const carol = await register('carol');
      const dave = await register('dave');
      const c = await cryptoClient(carol);
      const crypto = c.getCrypto()!;
      // First upload: no master key stored yet, so the server lets it through without UIA (cross_signing.yaml).
      await crypto.bootstrapCrossSigning({
        authUploadDeviceSigningKeys: async (makeRequest) => {
          await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: carol.localpart }, password: PASSWORD });
        },
      });
      const status = await crypto.getCrossSigningStatus();
      expect(status.publicKeysOnDevice).toBe(true);
      // Dave sees carol's master and self-signing keys, and her device signed by the self-signing key.
      const seen = await eventually('carol device signed by her self-signing key', async () => {
        const q = await api(dave.token, 'POST', '/keys/query', { device_keys: { [carol.userId]: [] } });
        const ssk = q.json.self_signing_keys[carol.userId] as Json | undefined;
        const sskId = ssk ? Object.keys(ssk.keys as Json)[0] : undefined;
        const sigs = q.json.device_keys[carol.userId]?.[carol.deviceId]?.signatures?.[carol.userId] as Json | undefined;
        return sskId && sigs?.[sskId] ? q.json : undefined;
      });
      expect(seen.master_keys[carol.userId]).toBeDefined();
      expect(seen.user_signing_keys[carol.userId]).toBeUndefined();

      await crypto.resetKeyBackup();
      const { room_id: roomId } = await c.createRoom({
        preset: Preset.PrivateChat,
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      });
      await eventually('carol sees her encrypted room', () => (c.getRoom(roomId)?.hasEncryptionStateEvent() ? true : undefined));
      await c.sendMessage(roomId, { msgtype: MsgType.Text, body: 'backed up' });
      const backup = await eventually('the room key in the server-side backup', async () => {
        const v = await api(carol.token, 'GET', '/room_keys/version');
        return v.status === 200 && (v.json.count as number) > 0 ? v.json : undefined;
      }, 60_000);
      const keys = await api(carol.token, 'GET', `/room_keys/keys?version=${encodeURIComponent(backup.version as string)}`);
      expect(Object.keys(keys.json.rooms)).toEqual([roomId]);
    });
  });
});
