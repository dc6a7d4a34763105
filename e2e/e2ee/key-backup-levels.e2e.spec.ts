/**
 * Server-side key backup at each level, over raw HTTP against a running
 * server, in both modes (in the cluster the router sends `/room_keys/` to
 * key-server): updating a backup version (PUT /room_keys/version/{version}),
 * reading and deleting one room's keys (GET and DELETE
 * /room_keys/keys/{roomId}), deleting every key of a version (DELETE
 * /room_keys/keys), the replacement rule at room level, the `etag` and
 * `count` each write answers, and the errors for a missing, unknown, foreign
 * or superseded version. e2ee.e2e.spec.ts covers the rest of key backup.
 *
 * Spec: data/api/client-server/key_backup.yaml; modules/end_to_end_encryption.md
 * "Server-side key backups".
 */
import type { Mode, TestServer } from '../support/servers';
import { newUser, rawApi, REGISTER_BURST_ENV, type Json, type TestUser } from '../support/fixtures';
import { startTestServer } from '../support/servers';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-backup-123';
const ALGORITHM = 'm.megolm_backup.v1.curve25519-aes-sha2';
const ROOM_A = '!backup-a:example.org';
const ROOM_B = '!backup-b:example.org';

/** KeyBackupData (definitions/key_backup_data.yaml); `tag` tells which upload the server kept. */
function keyData(firstMessageIndex: number, forwardedCount: number, isVerified: boolean, tag: string): Json {
  return { first_message_index: firstMessageIndex, forwarded_count: forwardedCount, is_verified: isVerified, session_data: { ephemeral: 'ZXBo', ciphertext: tag, mac: 'bWFj' } };
}

describe.each(modes)('key backup by room, whole backup and version update (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  const enc = encodeURIComponent;
  const api = (user: TestUser, method: string, path: string, body?: unknown) => rawApi(base, user.token, method, path, body);

  beforeAll(async () => {
    server = await startTestServer(mode, { env: REGISTER_BURST_ENV });
    base = server.baseUrl;
  });

  afterAll(async () => {
    await server?.stop();
  });

  /** POST /room_keys/version; answers the new version. */
  async function createVersion(user: TestUser, authData: Json = { public_key: 'cHVibGljLWtleS0x' }): Promise<string> {
    const created = await api(user, 'POST', '/room_keys/version', { algorithm: ALGORITHM, auth_data: authData });
    expect(created.status).toBe(200);
    expect(typeof created.json.version).toBe('string');
    return created.json.version as string;
  }

  /** PUT /room_keys/keys/{roomId}?version=…, expecting 200; answers { count, etag }. */
  async function putRoom(user: TestUser, version: string, roomId: string, sessions: Json): Promise<{ count: number; etag: string }> {
    const put = await api(user, 'PUT', `/room_keys/keys/${enc(roomId)}?version=${enc(version)}`, { sessions });
    expect(put.status).toBe(200);
    expect(typeof put.json.etag).toBe('string');
    expect(typeof put.json.count).toBe('number');
    return put.json as { count: number; etag: string };
  }

  /** GET /room_keys/version/{version}, expecting 200. */
  async function versionInfo(user: TestUser, version: string): Promise<Json> {
    const info = await api(user, 'GET', `/room_keys/version/${enc(version)}`);
    expect(info.status).toBe(200);
    return info.json;
  }

  describe('PUT /room_keys/version/{version}', () => {
    it('replaces auth_data, with or without a matching version in the body, and keeps the keys', async () => {
      const alice = await newUser(base, 'bkupd', PASSWORD);
      const version = await createVersion(alice, { public_key: 'b2xk' });
      await putRoom(alice, version, ROOM_A, { s1: keyData(0, 0, false, 'kept') });
      const before = await versionInfo(alice, version);

      const signed = { public_key: 'bmV3', signatures: { [alice.userId]: { [`ed25519:${alice.deviceId}`]: 'c2ln' } } };
      const updated = await api(alice, 'PUT', `/room_keys/version/${enc(version)}`, { algorithm: ALGORITHM, auth_data: signed, version });
      expect(updated.status).toBe(200);
      expect(updated.json).toEqual({});
      // Only auth_data changes; the keys, their count and etag stay.
      expect(await versionInfo(alice, version)).toEqual({ algorithm: ALGORITHM, auth_data: signed, count: 1, etag: before.etag, version });
      const current = await api(alice, 'GET', '/room_keys/version');
      expect(current.json.auth_data).toEqual(signed);
      expect((await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}/s1?version=${enc(version)}`)).json).toEqual(keyData(0, 0, false, 'kept'));

      // `version` in the body is optional.
      const again = await api(alice, 'PUT', `/room_keys/version/${enc(version)}`, { algorithm: ALGORITHM, auth_data: { public_key: 'dGhpcmQ' } });
      expect(again.status).toBe(200);
      expect((await versionInfo(alice, version)).auth_data).toEqual({ public_key: 'dGhpcmQ' });
    });

    it('refuses a body version other than the path, an algorithm change, an unknown or deleted version, changing nothing', async () => {
      const alice = await newUser(base, 'bkbad', PASSWORD);
      const bob = await newUser(base, 'bkbob', PASSWORD);
      const version = await createVersion(alice, { public_key: 'b3JpZ2luYWw' });
      const path = `/room_keys/version/${enc(version)}`;

      const mismatched = await api(alice, 'PUT', path, { algorithm: ALGORITHM, auth_data: { public_key: 'eA' }, version: `${version}0` });
      expect(mismatched.status).toBe(400);
      expect(mismatched.json.errcode).toBe('M_INVALID_PARAM');

      // "Must be the same as the algorithm currently used by the backup": 400 M_INVALID_PARAM.
      const otherAlgorithm = await api(alice, 'PUT', path, { algorithm: 'org.example.other_backup', auth_data: { public_key: 'eA' }, version });
      expect(otherAlgorithm.status).toBe(400);
      expect(otherAlgorithm.json.errcode).toBe('M_INVALID_PARAM');

      // Bad bodies: a Matrix 400, never a 500.
      for (const body of [{ algorithm: ALGORITHM }, { algorithm: ALGORITHM, auth_data: 'x' }, { auth_data: { public_key: 'eA' } }]) {
        const bad = await api(alice, 'PUT', path, body);
        expect(bad.status).toBe(400);
        expect(bad.json.errcode).toMatch(/^M_/);
      }
      expect((await versionInfo(alice, version)).auth_data).toEqual({ public_key: 'b3JpZ2luYWw' });

      const unknown = await api(alice, 'PUT', '/room_keys/version/987654321', { algorithm: ALGORITHM, auth_data: { public_key: 'eA' } });
      expect(unknown.status).toBe(404);
      expect(unknown.json.errcode).toBe('M_NOT_FOUND');
      // Backups are per user: bob cannot update alice's version.
      const foreign = await api(bob, 'PUT', path, { algorithm: ALGORITHM, auth_data: { public_key: 'Ym9i' } });
      expect(foreign.status).toBe(404);
      expect(foreign.json.errcode).toBe('M_NOT_FOUND');
      expect((await versionInfo(alice, version)).auth_data).toEqual({ public_key: 'b3JpZ2luYWw' });

      expect((await api(alice, 'DELETE', path)).status).toBe(200);
      const deleted = await api(alice, 'PUT', path, { algorithm: ALGORITHM, auth_data: { public_key: 'eA' } });
      expect(deleted.status).toBe(404);
      expect(deleted.json.errcode).toBe('M_NOT_FOUND');
      // "If the backup was previously deleted, the call should succeed rather than returning an error."
      expect((await api(alice, 'DELETE', path)).status).toBe(200);
      expect((await api(alice, 'DELETE', '/room_keys/version/987654321')).json.errcode).toBe('M_NOT_FOUND');
    });
  });

  describe('GET /room_keys/keys/{roomId}', () => {
    it("answers that room's sessions only, and empty sessions for a room without keys", async () => {
      const alice = await newUser(base, 'bkget', PASSWORD);
      const version = await createVersion(alice);
      const put = await api(alice, 'PUT', `/room_keys/keys?version=${enc(version)}`, {
        rooms: {
          [ROOM_A]: { sessions: { s1: keyData(1, 0, false, 'a1'), s2: keyData(0, 2, true, 'a2') } },
          [ROOM_B]: { sessions: { s3: keyData(4, 1, false, 'b3') } },
        },
      });
      expect(put.status).toBe(200);
      expect(put.json.count).toBe(3);

      const roomA = await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(version)}`);
      expect(roomA.status).toBe(200);
      expect(roomA.json).toEqual({ sessions: { s1: keyData(1, 0, false, 'a1'), s2: keyData(0, 2, true, 'a2') } });
      const roomB = await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_B)}?version=${enc(version)}`);
      expect(roomB.json).toEqual({ sessions: { s3: keyData(4, 1, false, 'b3') } });
      // "If no keys are found, then an object with an empty sessions property will be returned."
      const none = await api(alice, 'GET', `/room_keys/keys/${enc('!no-keys:example.org')}?version=${enc(version)}`);
      expect(none.status).toBe(200);
      expect(none.json).toEqual({ sessions: {} });

      // Keys belong to a version: a newer version starts empty, and the older one still reads.
      const newer = await createVersion(alice);
      expect((await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(newer)}`)).json).toEqual({ sessions: {} });
      expect(Object.keys((await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(version)}`)).json.sessions).sort()).toEqual(['s1', 's2']);
    });

    it('needs the version: missing is 400 M_MISSING_PARAM; unknown, deleted or another user\'s is 404 M_NOT_FOUND', async () => {
      const alice = await newUser(base, 'bkgv', PASSWORD);
      const bob = await newUser(base, 'bkgvb', PASSWORD);
      const version = await createVersion(alice);
      await putRoom(alice, version, ROOM_A, { s1: keyData(0, 0, false, 'mine') });
      const room = `/room_keys/keys/${enc(ROOM_A)}`;

      const missing = await api(alice, 'GET', room);
      expect(missing.status).toBe(400);
      expect(missing.json.errcode).toBe('M_MISSING_PARAM');
      const unknown = await api(alice, 'GET', `${room}?version=987654321`);
      expect(unknown.status).toBe(404);
      expect(unknown.json.errcode).toBe('M_NOT_FOUND');
      const foreign = await api(bob, 'GET', `${room}?version=${enc(version)}`);
      expect(foreign.status).toBe(404);
      expect(foreign.json.errcode).toBe('M_NOT_FOUND');

      expect((await api(alice, 'DELETE', `/room_keys/version/${enc(version)}`)).status).toBe(200);
      const deleted = await api(alice, 'GET', `${room}?version=${enc(version)}`);
      expect(deleted.status).toBe(404);
      expect(deleted.json.errcode).toBe('M_NOT_FOUND');
    });
  });

  describe('PUT /room_keys/keys/{roomId}: the replacement rule', () => {
    it('a better key replaces a worse one (verified, then lower first_message_index, then lower forwarded_count); etag moves only on a change', async () => {
      const alice = await newUser(base, 'bkrule', PASSWORD);
      const version = await createVersion(alice);
      const stored = async (): Promise<string> => {
        const room = await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(version)}`);
        expect(room.status).toBe(200);
        return (room.json.sessions as Record<string, Json>).s1.session_data.ciphertext as string;
      };

      const first = await putRoom(alice, version, ROOM_A, { s1: keyData(5, 2, false, 'first') });
      expect(first.count).toBe(1);
      expect(await stored()).toBe('first');

      // Worse: higher forwarded_count, then higher first_message_index (even with a lower forwarded_count).
      for (const worse of [keyData(5, 3, false, 'more-forwarded'), keyData(6, 0, false, 'later-index')]) {
        const kept = await putRoom(alice, version, ROOM_A, { s1: worse });
        expect(kept).toEqual({ count: 1, etag: first.etag });
        expect(await stored()).toBe('first');
      }

      // Better, step by step; each replacement changes the etag.
      let etag = first.etag;
      const steps: Array<[Json, string]> = [
        [keyData(5, 1, false, 'less-forwarded'), 'same index, lower forwarded_count'],
        [keyData(3, 9, false, 'earlier-index'), 'lower first_message_index beats forwarded_count'],
        [keyData(8, 9, true, 'verified'), 'verified beats a lower first_message_index'],
      ];
      for (const [better, why] of steps) {
        const replaced = await putRoom(alice, version, ROOM_A, { s1: better });
        expect({ why, count: replaced.count }).toEqual({ why, count: 1 });
        expect(replaced.etag).not.toBe(etag);
        etag = replaced.etag;
        expect(await stored()).toBe(better.session_data.ciphertext);
      }

      // Once verified, an unverified key never replaces it, however early its index.
      const unverified = await putRoom(alice, version, ROOM_A, { s1: keyData(0, 0, false, 'unverified') });
      expect(unverified).toEqual({ count: 1, etag });
      expect(await stored()).toBe('verified');

      // One request with a worse key for s1 and a new s2: s2 is stored, s1 kept, the etag moves.
      const mixed = await putRoom(alice, version, ROOM_A, { s1: keyData(9, 9, true, 'worse-verified'), s2: keyData(0, 0, false, 'new') });
      expect(mixed.count).toBe(2);
      expect(mixed.etag).not.toBe(etag);
      expect(await stored()).toBe('verified');
      expect(await versionInfo(alice, version)).toMatchObject({ count: 2, etag: mixed.etag });
    });

    it('writes only into the current version: 403 M_WRONG_ROOM_KEYS_VERSION with current_version, 400 without a version', async () => {
      const alice = await newUser(base, 'bkwv', PASSWORD);
      const none = await api(alice, 'PUT', `/room_keys/keys/${enc(ROOM_A)}?version=1`, { sessions: { s1: keyData(0, 0, false, 'x') } });
      expect(none.status).toBe(404);
      expect(none.json.errcode).toBe('M_NOT_FOUND');

      const old = await createVersion(alice);
      const current = await createVersion(alice);
      const wrong = await api(alice, 'PUT', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(old)}`, { sessions: { s1: keyData(0, 0, false, 'x') } });
      expect(wrong.status).toBe(403);
      expect(wrong.json).toMatchObject({ errcode: 'M_WRONG_ROOM_KEYS_VERSION', current_version: current });
      const missing = await api(alice, 'PUT', `/room_keys/keys/${enc(ROOM_A)}`, { sessions: { s1: keyData(0, 0, false, 'x') } });
      expect(missing.status).toBe(400);
      expect(missing.json.errcode).toBe('M_MISSING_PARAM');
      const noSessions = await api(alice, 'PUT', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(current)}`, { sessions: 'x' });
      expect(noSessions.status).toBe(400);
      expect(noSessions.json.errcode).toMatch(/^M_/);
      expect((await versionInfo(alice, old)).count).toBe(0);
      expect((await versionInfo(alice, current)).count).toBe(0);
    });
  });

  describe('DELETE /room_keys/keys/{roomId}', () => {
    it("removes that room's keys only, answering the backup's new count and etag", async () => {
      const alice = await newUser(base, 'bkdelr', PASSWORD);
      const version = await createVersion(alice);
      await putRoom(alice, version, ROOM_A, { s1: keyData(0, 0, false, 'a1'), s2: keyData(0, 0, false, 'a2') });
      const filled = await putRoom(alice, version, ROOM_B, { s3: keyData(0, 0, false, 'b3') });
      expect(filled.count).toBe(3);

      const deleted = await api(alice, 'DELETE', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(version)}`);
      expect(deleted.status).toBe(200);
      // `count` is what the backup still holds, not how many went.
      expect(deleted.json.count).toBe(1);
      expect(typeof deleted.json.etag).toBe('string');
      expect(deleted.json.etag).not.toBe(filled.etag);
      expect((await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}?version=${enc(version)}`)).json).toEqual({ sessions: {} });
      expect((await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_A)}/s1?version=${enc(version)}`)).status).toBe(404);
      expect((await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_B)}?version=${enc(version)}`)).json).toEqual({ sessions: { s3: keyData(0, 0, false, 'b3') } });
      expect(await versionInfo(alice, version)).toMatchObject({ count: 1, etag: deleted.json.etag });

      // Nothing left to delete (again, or a room never backed up): the same count and etag.
      for (const roomId of [ROOM_A, '!never:example.org']) {
        const noop = await api(alice, 'DELETE', `/room_keys/keys/${enc(roomId)}?version=${enc(version)}`);
        expect(noop.status).toBe(200);
        expect(noop.json).toEqual({ count: 1, etag: deleted.json.etag });
      }

      // The room can be backed up again afterwards.
      const refilled = await putRoom(alice, version, ROOM_A, { s1: keyData(3, 0, false, 'again') });
      expect(refilled.count).toBe(2);
      expect(refilled.etag).not.toBe(deleted.json.etag);
    });

    it('needs the version: missing is 400 M_MISSING_PARAM; unknown or another user\'s is 404 M_NOT_FOUND, deleting nothing', async () => {
      const alice = await newUser(base, 'bkdrv', PASSWORD);
      const bob = await newUser(base, 'bkdrvb', PASSWORD);
      const version = await createVersion(alice);
      const filled = await putRoom(alice, version, ROOM_A, { s1: keyData(0, 0, false, 'mine') });
      const room = `/room_keys/keys/${enc(ROOM_A)}`;

      const missing = await api(alice, 'DELETE', room);
      expect(missing.status).toBe(400);
      expect(missing.json.errcode).toBe('M_MISSING_PARAM');
      const unknown = await api(alice, 'DELETE', `${room}?version=987654321`);
      expect(unknown.status).toBe(404);
      expect(unknown.json.errcode).toBe('M_NOT_FOUND');
      const foreign = await api(bob, 'DELETE', `${room}?version=${enc(version)}`);
      expect(foreign.status).toBe(404);
      expect(foreign.json.errcode).toBe('M_NOT_FOUND');
      expect(await versionInfo(alice, version)).toMatchObject({ count: 1, etag: filled.etag });
    });
  });

  describe('DELETE /room_keys/keys', () => {
    it('removes every key of the named version only, answering count 0 and a new etag', async () => {
      const alice = await newUser(base, 'bkdela', PASSWORD);
      const old = await createVersion(alice);
      await putRoom(alice, old, ROOM_A, { s1: keyData(0, 0, false, 'old') });
      const current = await createVersion(alice);
      await putRoom(alice, current, ROOM_A, { s1: keyData(0, 0, false, 'a1') });
      const filled = await putRoom(alice, current, ROOM_B, { s2: keyData(0, 0, false, 'b2'), s3: keyData(0, 0, false, 'b3') });
      expect(filled.count).toBe(3);

      // Deleting from the older version leaves the current one alone.
      const oldDeleted = await api(alice, 'DELETE', `/room_keys/keys?version=${enc(old)}`);
      expect(oldDeleted.status).toBe(200);
      expect(oldDeleted.json.count).toBe(0);
      expect(await versionInfo(alice, current)).toMatchObject({ count: 3, etag: filled.etag });

      const deleted = await api(alice, 'DELETE', `/room_keys/keys?version=${enc(current)}`);
      expect(deleted.status).toBe(200);
      expect(deleted.json.count).toBe(0);
      expect(typeof deleted.json.etag).toBe('string');
      expect(deleted.json.etag).not.toBe(filled.etag);
      // "If no keys are found, then an object with an empty rooms property will be returned."
      expect((await api(alice, 'GET', `/room_keys/keys?version=${enc(current)}`)).json).toEqual({ rooms: {} });
      expect((await api(alice, 'GET', `/room_keys/keys/${enc(ROOM_B)}?version=${enc(current)}`)).json).toEqual({ sessions: {} });
      const info = await versionInfo(alice, current);
      expect(info).toMatchObject({ count: 0, etag: deleted.json.etag, version: current });
      // The version itself stays (only keys went): it is still current and takes keys.
      expect((await api(alice, 'GET', '/room_keys/version')).json.version).toBe(current);

      const noop = await api(alice, 'DELETE', `/room_keys/keys?version=${enc(current)}`);
      expect(noop.json).toEqual({ count: 0, etag: deleted.json.etag });
      const refilled = await putRoom(alice, current, ROOM_A, { s1: keyData(0, 0, false, 'again') });
      expect(refilled.count).toBe(1);
    });

    it('needs the version: missing is 400 M_MISSING_PARAM; unknown, deleted or another user\'s is 404 M_NOT_FOUND', async () => {
      const alice = await newUser(base, 'bkdav', PASSWORD);
      const bob = await newUser(base, 'bkdavb', PASSWORD);
      const version = await createVersion(alice);
      const filled = await putRoom(alice, version, ROOM_A, { s1: keyData(0, 0, false, 'mine') });

      const missing = await api(alice, 'DELETE', '/room_keys/keys');
      expect(missing.status).toBe(400);
      expect(missing.json.errcode).toBe('M_MISSING_PARAM');
      const unknown = await api(alice, 'DELETE', '/room_keys/keys?version=987654321');
      expect(unknown.status).toBe(404);
      expect(unknown.json.errcode).toBe('M_NOT_FOUND');
      const foreign = await api(bob, 'DELETE', `/room_keys/keys?version=${enc(version)}`);
      expect(foreign.status).toBe(404);
      expect(foreign.json.errcode).toBe('M_NOT_FOUND');
      expect(await versionInfo(alice, version)).toMatchObject({ count: 1, etag: filled.etag });

      expect((await api(alice, 'DELETE', `/room_keys/version/${enc(version)}`)).status).toBe(200);
      const deleted = await api(alice, 'DELETE', `/room_keys/keys?version=${enc(version)}`);
      expect(deleted.status).toBe(404);
      expect(deleted.json.errcode).toBe('M_NOT_FOUND');
    });
  });
});
