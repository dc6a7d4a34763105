/**
 * Interop: end-to-end encryption keys between Atrium and Synapse, in both
 * directions (issue 6). A user on one server uploads keys; a user on the
 * other queries and claims them through their own server (server-server-api
 * "End-to-End Encryption": /user/keys/query, /user/keys/claim; "Device
 * Management": /user/devices and m.device_list_update). Then matrix-js-sdk
 * clients with Rust crypto on either server decrypt each other's messages.
 */
import { ClientEvent, MsgType, type MatrixClient } from 'matrix-js-sdk';
import { generateSigningKey, signJson, type JsonObject } from '@atrium/matrix';
import { client } from '../support/clients';
import { eventually, type Json } from '../support/fixtures';
import { DIRECTIONS, federatedRoom, FEDERATION_WAIT_MS, INTEROP_PASSWORD, interopModes, sides, useAtrium, interopPeers, usePeer, type PeerUser } from '../support/interop';

const enc = encodeURIComponent;

/** Device keys of the user's device, self-signed, and a signer of key objects with the device key. */
function deviceKeys(user: { userId: string; deviceId: string }): { keys: JsonObject; sign(object: JsonObject): JsonObject } {
  const key = generateSigningKey(user.deviceId);
  const keys = signJson(
    {
      user_id: user.userId,
      device_id: user.deviceId,
      algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
      keys: { [`ed25519:${user.deviceId}`]: key.publicKeyBase64, [`curve25519:${user.deviceId}`]: `curve${user.deviceId}` },
    },
    user.userId,
    key,
  );
  return { keys, sign: (object) => signJson(object, user.userId, key) };
}

/**
 * Uploads device keys, two one-time keys and a fallback key for the user's device. The key
 * objects are signed by the device (Synapse refuses a KeyObject without `signatures`).
 */
async function uploadKeys(user: PeerUser): Promise<{ keys: JsonObject; fallback: JsonObject }> {
  const device = deviceKeys(user);
  const fallback = device.sign({ key: 'fallback1', fallback: true });
  const res = await user.api('POST', '/keys/upload', {
    device_keys: device.keys,
    one_time_keys: { 'signed_curve25519:AAAA': device.sign({ key: 'otk1' }), 'signed_curve25519:AAAB': device.sign({ key: 'otk2' }) },
    fallback_keys: { 'signed_curve25519:FFFF': fallback },
  });
  if (res.status !== 200) throw new Error(`keys/upload on ${user.serverName}: ${res.status} ${JSON.stringify(res.json)}`);
  return { keys: device.keys, fallback };
}

/** Logs `user` in again on its own server: a second device. */
async function secondDevice(user: PeerUser): Promise<{ userId: string; deviceId: string; token: string }> {
  const res = await fetch(`${user.base}/_matrix/client/v3/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ type: 'm.login.password', identifier: { type: 'm.id.user', user: user.userId }, password: INTEROP_PASSWORD }),
  });
  const json = (await res.json()) as Json;
  if (res.status !== 200) throw new Error(`login on ${user.serverName}: ${res.status} ${JSON.stringify(json)}`);
  return { userId: user.userId, deviceId: json.device_id as string, token: json.access_token as string };
}

describe.each(interopPeers())('E2EE keys (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const side = sides(peers, atrium);
    const started: MatrixClient[] = [];

    afterAll(() => {
      for (const sdk of started) sdk.stopClient();
    });

    describe.each(DIRECTIONS)('keys of a user on %s, asked for from %s', (ownerName, askerName) => {
      it('query and claim with no shared room (/user/keys/query and /user/keys/claim)', async () => {
        const owner = await side[ownerName].user('owner');
        const asker = await side[askerName].user('asker');
        const { keys, fallback: fallbackKey } = await uploadKeys(owner);

        const q = await asker.api('POST', '/keys/query', { device_keys: { [owner.userId]: [] } });
        expect(q.status).toBe(200);
        expect(q.json.failures ?? {}).toEqual({});
        const { unsigned: _unsigned, ...signed } = q.json.device_keys[owner.userId][owner.deviceId] as Json;
        expect(signed).toEqual(keys);

        const claim = () => asker.api('POST', '/keys/claim', { one_time_keys: { [owner.userId]: { [owner.deviceId]: 'signed_curve25519' } } });
        const got: string[] = [];
        for (let i = 0; i < 2; i++) {
          const c = await claim();
          expect(c.status).toBe(200);
          expect(c.json.failures ?? {}).toEqual({});
          got.push(...Object.keys(c.json.one_time_keys[owner.userId][owner.deviceId] as Json));
        }
        expect(got.sort()).toEqual(['signed_curve25519:AAAA', 'signed_curve25519:AAAB']);
        const fallback = await claim();
        expect(fallback.json.one_time_keys[owner.userId][owner.deviceId]).toEqual({ 'signed_curve25519:FFFF': fallbackKey });
      });

      it('in a shared room, a new device of the owner reaches the asker (/user/devices, m.device_list_update)', async () => {
        const { owner, guest: asker } = await federatedRoom(side[ownerName], side[askerName]);
        await uploadKeys(owner);
        const devices = async (): Promise<string[]> => {
          const q = await asker.api('POST', '/keys/query', { device_keys: { [owner.userId]: [] } });
          return Object.keys((q.json.device_keys?.[owner.userId] as Json | undefined) ?? {}).sort();
        };
        await eventually('the first device on the asker side', async () => ((await devices()).includes(owner.deviceId) ? true : undefined), FEDERATION_WAIT_MS, 250);

        const second = await secondDevice(owner);
        const up = await fetch(`${owner.base}/_matrix/client/v3/keys/upload`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${second.token}` },
          body: JSON.stringify({ device_keys: deviceKeys(second).keys }),
        });
        expect(up.status).toBe(200);
        const both = [owner.deviceId, second.deviceId].sort();
        expect(await eventually('the second device on the asker side', async () => {
          const ids = await devices();
          return ids.length === 2 ? ids : undefined;
        }, FEDERATION_WAIT_MS, 250)).toEqual(both);
      });
    });

    /** A started matrix-js-sdk client with Rust crypto in memory, after its first sync. */
    async function cryptoClient(user: PeerUser): Promise<MatrixClient> {
      const sdk = client(user.base, { userId: user.userId, accessToken: user.token, deviceId: user.deviceId });
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

    async function decryptedBody(sdk: MatrixClient, roomId: string, eventId: string): Promise<string> {
      return eventually(`${sdk.getUserId()}/${sdk.getDeviceId()} decrypting ${eventId}`, async () => {
        const event = sdk.getRoom(roomId)?.findEventById(eventId);
        if (!event) return undefined;
        if (event.isBeingDecrypted() || event.isDecryptionFailure()) await sdk.decryptEventIfNeeded(event, { isRetry: true });
        const body = event.getClearContent()?.body;
        return event.getType() === 'm.room.message' && typeof body === 'string' ? body : undefined;
      }, FEDERATION_WAIT_MS, 250);
    }

    it.each(DIRECTIONS)('matrix-js-sdk with Rust crypto: encrypted room on %s joined from %s, both decrypt', async (homeName, remoteName) => {
      const owner = await side[homeName].user('owner');
      const guest = await side[remoteName].user('guest');
      const so = await cryptoClient(owner);
      const sg = await cryptoClient(guest);
      const created = await owner.api('POST', '/createRoom', {
        preset: 'public_chat',
        initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
      });
      expect(created.status).toBe(200);
      const roomId = created.json.room_id as string;
      const joined = await guest.api('POST', `/join/${enc(roomId)}?via=${enc(side[homeName].serverName())}&server_name=${enc(side[homeName].serverName())}`, {});
      expect(joined).toMatchObject({ status: 200 });
      await eventually('both clients see the encrypted room with both joined', () =>
        [so, sg].every((c) => c.getRoom(roomId)?.hasEncryptionStateEvent() && c.getRoom(roomId)?.getMember(owner.userId)?.membership === 'join' && c.getRoom(roomId)?.getMember(guest.userId)?.membership === 'join')
          ? true
          : undefined,
      FEDERATION_WAIT_MS, 250);

      // A sender shares a room key only with the devices its crypto knows when it sends, so wait until each
      // side's device list holds the other's device (fetched over federation, refreshed by m.device_list_update).
      const knows = async (sdk: MatrixClient, userId: string, deviceId: string): Promise<boolean> =>
        (await sdk.getCrypto()?.getUserDeviceInfo([userId], true))?.get(userId)?.has(deviceId) === true;
      await eventually('each side knows the other side\'s device', async () =>
        (await knows(so, guest.userId, guest.deviceId)) && (await knows(sg, owner.userId, owner.deviceId)) ? true : undefined,
      FEDERATION_WAIT_MS, 250).catch(async (err: Error) => {
        // What each server answers now tells a stale server-side list from a client that did not ask again.
        const asked = async (asker: PeerUser, target: PeerUser) => JSON.stringify((await asker.api('POST', '/keys/query', { device_keys: { [target.userId]: [] } })).json.device_keys ?? null);
        throw new Error(`${err.message}; ${homeName} answers for ${guest.userId}: ${await asked(owner, guest)}; ${remoteName} answers for ${owner.userId}: ${await asked(guest, owner)}`);
      });

      const fromOwner = await so.sendMessage(roomId, { msgtype: MsgType.Text, body: `secret from ${homeName}` });
      expect(await decryptedBody(sg, roomId, fromOwner.event_id)).toBe(`secret from ${homeName}`);
      const fromGuest = await sg.sendMessage(roomId, { msgtype: MsgType.Text, body: `secret from ${remoteName}` });
      expect(await decryptedBody(so, roomId, fromGuest.event_id)).toBe(`secret from ${remoteName}`);
    });
  });
});
