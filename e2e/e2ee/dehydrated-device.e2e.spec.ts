/**
 * Dehydrated devices (MSC3814, unstable prefix org.matrix.msc3814.v1) in
 * both modes, over raw HTTP: PUT/GET/DELETE /dehydrated_device and
 * POST /dehydrated_device/{device_id}/events with next_batch. The device is
 * an ordinary account device to others: its keys are queried and claimed,
 * and to-device messages sent to it wait for the rehydrating client, which
 * reads them without deleting them.
 */
import { generateSigningKey, signJson, type JsonObject } from '@atrium/matrix';
import { eventually, newUser, rawApi, REGISTER_BURST_ENV, type Json, type TestUser } from '../support/fixtures';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

const modes: Mode[] = ['embedded', 'cluster'];
const PASSWORD = 'pw-dehydrated-123';
const DEHYDRATED = '/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device';

function deviceKeys(userId: string, deviceId: string): JsonObject {
  const key = generateSigningKey(deviceId);
  return signJson(
    { user_id: userId, device_id: deviceId, algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'], keys: { [`ed25519:${deviceId}`]: key.publicKeyBase64, [`curve25519:${deviceId}`]: `curve${deviceId}` } },
    userId,
    key,
  );
}

describe.each(modes)('dehydrated devices, MSC3814 (%s mode)', (mode) => {
  let server: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    server = await startTestServer(mode, { env: REGISTER_BURST_ENV });
    alice = await newUser(server.baseUrl, 'alice', PASSWORD);
    bob = await newUser(server.baseUrl, 'bob', PASSWORD);
  });

  afterAll(async () => {
    await server?.stop();
  });

  const dehydrated = (user: TestUser, method: string, path = '', body?: unknown) => rawApi(server.baseUrl, user.token, method, `${DEHYDRATED}${path}`, body, '');
  const client = (user: TestUser, method: string, path: string, body?: unknown) => rawApi(server.baseUrl, user.token, method, path, body);
  const deviceIds = async (user: TestUser) => ((await client(user, 'GET', '/devices')).json.devices as Json[]).map((d) => d.device_id as string);

  it('upload, fetch, messages in batches without deleting them, replacement and deletion', async () => {
    expect(await dehydrated(alice, 'GET')).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
    expect(await dehydrated(alice, 'DELETE')).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });

    const data = { algorithm: 'org.matrix.msc3814.v1.olm', device_pickle: 'encrypted-pickle' };
    // Bad input changes nothing: no device_keys, a bad signature, another user's device_keys.
    expect(await dehydrated(alice, 'PUT', '', { device_id: 'DEHYD1', device_data: data })).toMatchObject({ status: 400, json: { errcode: 'M_MISSING_PARAM' } });
    expect(await dehydrated(alice, 'PUT', '', { device_id: 'DEHYD1', device_data: { no: 'algorithm' }, device_keys: deviceKeys(alice.userId, 'DEHYD1') })).toMatchObject({ status: 400 });
    const forged = deviceKeys(alice.userId, 'DEHYD1');
    (forged.keys as Json)['curve25519:DEHYD1'] = 'changed-after-signing';
    expect((await dehydrated(alice, 'PUT', '', { device_id: 'DEHYD1', device_data: data, device_keys: forged })).status).toBe(400);
    expect((await dehydrated(alice, 'PUT', '', { device_id: 'DEHYD1', device_data: data, device_keys: deviceKeys(bob.userId, 'DEHYD1') })).status).toBe(400);
    expect(await dehydrated(alice, 'PUT', '', { device_id: alice.deviceId, device_data: data, device_keys: deviceKeys(alice.userId, alice.deviceId) })).toMatchObject({ status: 400 });
    expect(await dehydrated(alice, 'GET')).toMatchObject({ status: 404 });
    expect(await deviceIds(alice)).not.toContain('DEHYD1');

    const put = await dehydrated(alice, 'PUT', '', {
      device_id: 'DEHYD1',
      device_data: data,
      initial_device_display_name: 'Dehydrated',
      device_keys: deviceKeys(alice.userId, 'DEHYD1'),
      one_time_keys: { 'signed_curve25519:AAAA': { key: 'otk-a' } },
      fallback_keys: { 'signed_curve25519:FFFF': { key: 'fallback', fallback: true } },
    });
    expect(put).toEqual({ status: 200, json: { device_id: 'DEHYD1' } });
    expect(await dehydrated(alice, 'GET')).toEqual({ status: 200, json: { device_id: 'DEHYD1', device_data: data } });
    expect(await deviceIds(alice)).toContain('DEHYD1');

    // To others it is a device with keys: queried, and its one-time key claimed.
    const query = await client(bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: ['DEHYD1'] } });
    expect(query.json.device_keys[alice.userId].DEHYD1.keys['curve25519:DEHYD1']).toBe('curveDEHYD1');
    const claim = await client(bob, 'POST', '/keys/claim', { one_time_keys: { [alice.userId]: { DEHYD1: 'signed_curve25519' } } });
    expect(claim.json.one_time_keys[alice.userId].DEHYD1).toEqual({ 'signed_curve25519:AAAA': { key: 'otk-a' } });

    // Bob sends it three to-device messages (three requests, three positions).
    for (const n of [1, 2, 3]) {
      const sent = await client(bob, 'PUT', `/sendToDevice/m.room_key_test/txn-dehyd-${n}`, { messages: { [alice.userId]: { DEHYD1: { n } } } });
      expect(sent.status).toBe(200);
    }
    const first = await eventually('the three messages', async () => {
      const r = await dehydrated(alice, 'POST', '/DEHYD1/events', {});
      return r.status === 200 && (r.json.events as Json[]).length === 3 ? r.json : undefined;
    });
    expect(first.events).toEqual([1, 2, 3].map((n) => ({ sender: bob.userId, type: 'm.room_key_test', content: { n } })));
    expect(typeof first.next_batch).toBe('string');
    // The last batch: empty events, and a next_batch still.
    const last = await dehydrated(alice, 'POST', '/DEHYD1/events', { next_batch: first.next_batch });
    expect(last.status).toBe(200);
    expect(last.json.events).toEqual([]);
    expect(typeof last.json.next_batch).toBe('string');
    // Not deleted: reading again from the start gives them again.
    expect((await dehydrated(alice, 'POST', '/DEHYD1/events', {})).json.events).toHaveLength(3);
    expect(await dehydrated(alice, 'POST', '/DEHYD1/events', { next_batch: 'not-a-token' })).toMatchObject({ status: 400 });
    // The GET form matrix-js-sdk calls (`?from=`): the batch after the last has no next_batch, which ends its loop.
    const got = await dehydrated(alice, 'GET', '/DEHYD1/events');
    expect(got.json.events).toHaveLength(3);
    const end = await dehydrated(alice, 'GET', `/DEHYD1/events?from=${encodeURIComponent(got.json.next_batch as string)}`);
    expect(end).toEqual({ status: 200, json: { events: [] } });
    expect(await dehydrated(alice, 'GET', '/DEHYD1/events?from=x')).toMatchObject({ status: 400 });
    // Not the dehydrated device: 403; and bob has none.
    expect(await dehydrated(alice, 'POST', `/${alice.deviceId}/events`, {})).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });
    expect(await dehydrated(bob, 'POST', '/DEHYD1/events', {})).toMatchObject({ status: 403, json: { errcode: 'M_FORBIDDEN' } });

    // A new dehydrated device replaces the old one, which goes with its keys.
    expect(await dehydrated(alice, 'PUT', '', { device_id: 'DEHYD2', device_data: data, device_keys: deviceKeys(alice.userId, 'DEHYD2') })).toEqual({ status: 200, json: { device_id: 'DEHYD2' } });
    expect((await dehydrated(alice, 'GET')).json.device_id).toBe('DEHYD2');
    expect(await deviceIds(alice)).not.toContain('DEHYD1');
    await eventually('DEHYD1 keys gone', async () => {
      const q = await client(bob, 'POST', '/keys/query', { device_keys: { [alice.userId]: [] } });
      const devices = Object.keys(q.json.device_keys[alice.userId] ?? {});
      return !devices.includes('DEHYD1') && devices.includes('DEHYD2') ? true : undefined;
    });
    expect(await dehydrated(alice, 'POST', '/DEHYD1/events', {})).toMatchObject({ status: 403 });

    expect(await dehydrated(alice, 'DELETE')).toEqual({ status: 200, json: { device_id: 'DEHYD2' } });
    expect(await dehydrated(alice, 'GET')).toMatchObject({ status: 404 });
    expect(await deviceIds(alice)).not.toContain('DEHYD2');
  });
});
