/**
 * The end-to-end encryption scenarios of issue 6, written once and run both
 * on one server (e2e/e2ee, both modes) and across two Atrium servers
 * (e2e/federation): every user lives on a "home" (a base URL and server
 * name); on one server both homes are the same. Clients are matrix-js-sdk
 * with the Rust crypto stack in memory (`initRustCrypto({ useIndexedDB: false })`).
 * Spec: client-server-api modules/end_to_end_encryption.md (device lists,
 * "Tracking the device list for a user", "Server-side key backups",
 * cross-signing, secret storage), server-server-api "End-to-End Encryption".
 */
import { ClientEvent, createClient, MatrixEvent, MsgType, Preset, type MatrixClient } from 'matrix-js-sdk';
import { CryptoEvent, type GeneratedSecretStorageKey } from 'matrix-js-sdk/lib/crypto-api';
import type { Logger } from 'matrix-js-sdk/lib/logger';
import { registerUser, uniqueName } from './clients';
import { eventually, rawApi, type Json } from './fixtures';

export interface Home {
  baseUrl: string;
  serverName: string;
  /**
   * How a user is made on this home, when not by open registration (POST /register with the
   * dummy stage, as on Atrium): e.g. Synapse's shared-secret admin API. Gives the full user ID.
   */
  register?(localpart: string, password: string): Promise<string>;
}

export interface Account {
  home: Home;
  localpart: string;
  userId: string;
  password: string;
}

export interface Device {
  account: Account;
  deviceId: string;
  token: string;
  sdk: MatrixClient;
}

const WAIT_MS = 45_000;
const enc = encodeURIComponent;

const quietLogger: Logger = {
  trace: () => undefined,
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: (...msg: unknown[]) => console.error(...msg),
  getChild: () => quietLogger,
};

/** Starts devices and stops them all at the end of a suite. */
export class E2eeWorld {
  private readonly started: MatrixClient[] = [];

  async register(home: Home, prefix: string, password = 'pw-e2ee-scenarios'): Promise<Account> {
    const localpart = uniqueName(prefix);
    const userId = home.register ? await home.register(localpart, password) : (await registerUser(home.baseUrl, localpart, password)).user_id;
    return { home, localpart, userId, password };
  }

  /**
   * A new login of `account` as a started SDK client with Rust crypto, after its first sync.
   * `secretStorageKey`, when given, is what the client answers when its crypto asks for the
   * secret storage key (as a user typing in their recovery key).
   */
  async login(account: Account, secretStorageKey?: () => Uint8Array | undefined): Promise<Device> {
    const r = await rawApi(account.home.baseUrl, null, 'POST', '/login', {
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user: account.localpart },
      password: account.password,
    });
    if (r.status !== 200) throw new Error(`login of ${account.userId}: ${r.status} ${JSON.stringify(r.json)}`);
    const sdk = createClient({
      baseUrl: account.home.baseUrl,
      userId: account.userId,
      accessToken: r.json.access_token as string,
      deviceId: r.json.device_id as string,
      logger: quietLogger,
      cryptoCallbacks: {
        getSecretStorageKey: async ({ keys }) => {
          const key = secretStorageKey?.();
          const keyId = Object.keys(keys)[0];
          return key && keyId ? [keyId, key as Uint8Array<ArrayBuffer>] : null;
        },
      },
    });
    await sdk.initRustCrypto({ useIndexedDB: false });
    const prepared = new Promise<void>((resolve) => {
      sdk.on(ClientEvent.Sync, (state) => {
        if (state === 'PREPARED') resolve();
      });
    });
    this.started.push(sdk);
    await sdk.startClient({ initialSyncLimit: 20 });
    await prepared;
    return { account, deviceId: r.json.device_id as string, token: r.json.access_token as string, sdk };
  }

  stop(device: Device): void {
    device.sdk.stopClient();
  }

  stopAll(): void {
    for (const sdk of this.started) sdk.stopClient();
  }
}

export function api(device: Device, method: string, path: string, body?: unknown): Promise<{ status: number; json: Json }> {
  return rawApi(device.account.home.baseUrl, device.token, method, path, body);
}

/** An encrypted public room created by `creator`; every other account joins it through the creator's server. */
export async function encryptedRoom(creator: Device, joiners: Device[]): Promise<string> {
  const { room_id: roomId } = await creator.sdk.createRoom({
    preset: Preset.PublicChat,
    initial_state: [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }],
  });
  const joined = new Set<string>([creator.account.userId]);
  for (const d of joiners) {
    if (joined.has(d.account.userId)) continue;
    joined.add(d.account.userId);
    const r = await api(d, 'POST', `/join/${enc(roomId)}?via=${enc(creator.account.home.serverName)}`, {});
    if (r.status !== 200) throw new Error(`join of ${d.account.userId}: ${r.status} ${JSON.stringify(r.json)}`);
  }
  await eventually(
    'every device sees the encrypted room with every member joined',
    () =>
      [creator, ...joiners].every((c) => {
        const room = c.sdk.getRoom(roomId);
        return room?.hasEncryptionStateEvent() && [...joined].every((u) => room.getMember(u)?.membership === 'join');
      })
        ? true
        : undefined,
    WAIT_MS,
    200,
  );
  return roomId;
}

/** Waits until `device` has the event decrypted, and gives its body. */
export async function decryptedBody(device: Device, roomId: string, eventId: string): Promise<string> {
  const sdk = device.sdk;
  return eventually(
    `${sdk.getUserId()}/${sdk.getDeviceId()} decrypting ${eventId}`,
    async () => {
      const event = sdk.getRoom(roomId)?.findEventById(eventId);
      if (!event) return undefined;
      if (event.isBeingDecrypted() || event.isDecryptionFailure()) await sdk.decryptEventIfNeeded(event, { isRetry: true });
      const body = event.getClearContent()?.body;
      return event.getType() === 'm.room.message' && typeof body === 'string' ? body : undefined;
    },
    WAIT_MS,
    200,
  );
}

/** `reader`'s attempt to decrypt the raw event `eventId` (read through `member`, who is in the room): its body, or undefined on failure. */
export async function tryDecryptRaw(reader: Device, member: Device, roomId: string, eventId: string): Promise<string | undefined> {
  const r = await api(member, 'GET', `/rooms/${enc(roomId)}/event/${enc(eventId)}`);
  if (r.status !== 200) throw new Error(`event ${eventId}: ${r.status}`);
  const event = new MatrixEvent(r.json);
  await reader.sdk.decryptEventIfNeeded(event);
  if (event.isDecryptionFailure()) return undefined;
  const body = event.getClearContent()?.body;
  return typeof body === 'string' ? body : undefined;
}

/** Waits until `observer` lists `deviceId` among `userId`'s devices (device lists, /keys/query). */
export async function seesDevice(observer: Device, userId: string, deviceId: string): Promise<void> {
  await eventually(
    `${observer.account.userId} sees ${userId}/${deviceId}`,
    async () => ((await observer.sdk.getCrypto()!.getUserDeviceInfo([userId])).get(userId)?.has(deviceId) ? true : undefined),
    WAIT_MS,
    200,
  );
}

export async function send(device: Device, roomId: string, body: string): Promise<string> {
  return (await device.sdk.sendMessage(roomId, { msgtype: MsgType.Text, body })).event_id;
}

/**
 * (a) Two users, each with two devices, in an encrypted room: a message of each device is
 * decrypted by the three others.
 */
export async function twoUsersTwoDevicesEach(world: E2eeWorld, homeA: Home, homeB: Home): Promise<void> {
  const alice = await world.register(homeA, 'alice');
  const bob = await world.register(homeB, 'bob');
  const devices = [await world.login(alice), await world.login(alice), await world.login(bob), await world.login(bob)];
  const roomId = await encryptedRoom(devices[0], devices.slice(1));
  for (const sender of devices) {
    const body = `from ${sender.account.userId}/${sender.deviceId}`;
    const eventId = await send(sender, roomId, body);
    for (const reader of devices) {
      if (reader !== sender) expect(await decryptedBody(reader, roomId, eventId)).toBe(body);
    }
  }
}

/**
 * (c) A device added later is seen by the others through device lists (/sync device_lists,
 * m.device_list_update across servers) and decrypts what is sent after it arrived.
 */
export async function deviceAddedLater(world: E2eeWorld, homeA: Home, homeB: Home): Promise<void> {
  const alice = await world.register(homeA, 'alice');
  const bob = await world.register(homeB, 'bob');
  const a1 = await world.login(alice);
  const b1 = await world.login(bob);
  const roomId = await encryptedRoom(a1, [b1]);
  const first = await send(b1, roomId, 'before the new device');
  expect(await decryptedBody(a1, roomId, first)).toBe('before the new device');

  const a2 = await world.login(alice);
  await seesDevice(b1, alice.userId, a2.deviceId);
  await eventually('the new device sees the room', () => (a2.sdk.getRoom(roomId) ? true : undefined), WAIT_MS, 200);
  const later = await send(b1, roomId, 'after the new device arrived');
  expect(await decryptedBody(a2, roomId, later)).toBe('after the new device arrived');
  expect(await decryptedBody(a1, roomId, later)).toBe('after the new device arrived');
  // The new device was not given the session of the message sent before it existed.
  expect(await tryDecryptRaw(a2, a1, roomId, first)).toBeUndefined();
}

/**
 * (b) A new device gets the room keys from the server-side backup after it is trusted through
 * cross-signing: the first device bootstraps cross-signing and secret storage with a new key
 * backup; it receives a room key from dave (on another server across federation) and backs
 * it up; it is stopped (so nothing is forwarded device to
 * device); a second login, given the recovery key, imports the cross-signing keys from secret
 * storage and signs itself, trusts the backup, restores it and decrypts the old message.
 */
export async function newDeviceRestoresBackup(world: E2eeWorld, home: Home, senderHome: Home): Promise<void> {
  const account = await world.register(home, 'carol');
  const dave = await world.login(await world.register(senderHome, 'dave'));
  // Filled in once created; the devices' crypto asks for it through the callback.
  const recovery: { key?: GeneratedSecretStorageKey } = {};
  const first = await world.login(account, () => recovery.key?.privateKey);
  const crypto1 = first.sdk.getCrypto()!;
  const auth = async (makeRequest: (auth: Json | null) => Promise<unknown>) => {
    await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: account.localpart }, password: account.password });
  };
  await crypto1.bootstrapCrossSigning({ authUploadDeviceSigningKeys: auth });
  const created = await crypto1.createRecoveryKeyFromPassphrase();
  recovery.key = created;
  await crypto1.bootstrapSecretStorage({ createSecretStorageKey: async () => created, setupNewSecretStorage: true, setupNewKeyBackup: true });
  expect(await crypto1.isCrossSigningReady()).toBe(true);
  expect(await crypto1.isSecretStorageReady()).toBe(true);

  // dave (on `senderHome`) sends; the first device receives the room key and backs it up.
  const roomId = await encryptedRoom(dave, [first]);
  const eventId = await send(dave, roomId, 'kept in the backup');
  expect(await decryptedBody(first, roomId, eventId)).toBe('kept in the backup');
  await eventually(
    'the room key in the server-side backup',
    async () => {
      const v = await api(first, 'GET', '/room_keys/version');
      return v.status === 200 && (v.json.count as number) > 0 ? true : undefined;
    },
    WAIT_MS,
    200,
  );
  world.stop(first);

  const second = await world.login(account, () => recovery.key?.privateKey);
  const crypto2 = second.sdk.getCrypto()!;
  // Not trusted yet, and without the session.
  expect((await crypto2.getDeviceVerificationStatus(account.userId, second.deviceId))?.crossSigningVerified).toBe(false);
  expect(await tryDecryptRaw(second, second, roomId, eventId)).toBeUndefined();
  // Cross-signing keys from secret storage: the device signs itself with the self-signing key.
  // The private keys are checked against the public ones, so those must be downloaded first.
  await eventually('the second device has the public cross-signing keys', async () => ((await crypto2.userHasCrossSigningKeys(account.userId, true)) ? true : undefined), WAIT_MS, 200);
  await crypto2.bootstrapCrossSigning({ authUploadDeviceSigningKeys: auth });
  await eventually(
    'the second device cross-signed',
    async () => ((await crypto2.getDeviceVerificationStatus(account.userId, second.deviceId))?.crossSigningVerified ? true : undefined),
    WAIT_MS,
    200,
  );
  await crypto2.loadSessionBackupPrivateKeyFromSecretStorage();
  const check = await crypto2.checkKeyBackupAndEnable();
  expect(check?.trustInfo.trusted).toBe(true);
  const restored = await crypto2.restoreKeyBackup();
  expect(restored.imported).toBeGreaterThanOrEqual(1);
  expect(await tryDecryptRaw(second, second, roomId, eventId)).toBe('kept in the backup');
  expect(await decryptedBody(second, roomId, eventId)).toBe('kept in the backup');
}

/**
 * (d) A user who left gets no more room keys: the sender's crypto does not share the next
 * session with their devices. Before leaving they decrypt (the control); after, the remaining
 * members decrypt a new message and the leaver cannot, even given the event.
 */
export async function leaverGetsNoNewKeys(world: E2eeWorld, homeA: Home, homeB: Home): Promise<void> {
  const alice = await world.register(homeA, 'alice');
  const bob = await world.register(homeB, 'bob');
  const carol = await world.register(homeB, 'carol');
  const a = await world.login(alice);
  const b = await world.login(bob);
  const c = await world.login(carol);
  const roomId = await encryptedRoom(a, [b, c]);
  const before = await send(a, roomId, 'carol is still here');
  expect(await decryptedBody(c, roomId, before)).toBe('carol is still here');

  expect((await api(c, 'POST', `/rooms/${enc(roomId)}/leave`, {})).status).toBe(200);
  await eventually('alice and bob see carol gone', () => ([a, b].every((d) => d.sdk.getRoom(roomId)?.getMember(carol.userId)?.membership === 'leave') ? true : undefined), WAIT_MS, 200);

  const after = await send(a, roomId, 'carol has left');
  expect(await decryptedBody(b, roomId, after)).toBe('carol has left');
  // Carol's device keeps syncing for a while: any to-device room key for her would arrive now.
  await new Promise((r) => setTimeout(r, 3_000));
  expect(await tryDecryptRaw(c, b, roomId, after)).toBeUndefined();
  // The control: her device still decrypts what was sent while she was a member.
  expect(await tryDecryptRaw(c, b, roomId, before)).toBe('carol is still here');
}

/**
 * (e) Dehydrated devices (MSC3814) through matrix-js-sdk's own dehydration: the first device
 * sets up cross-signing and secret storage and dehydrates a device (`startDehydration`), then
 * logs out; a message is sent while only the dehydrated device exists; a new login given the
 * recovery key rehydrates it (GET /dehydrated_device, then its to-device events) and decrypts
 * the message with the room key the dehydrated device received.
 */
export async function rehydratedDeviceDecrypts(world: E2eeWorld, home: Home, senderHome: Home): Promise<void> {
  const account = await world.register(home, 'erin');
  const frank = await world.login(await world.register(senderHome, 'frank'));
  const recovery: { key?: GeneratedSecretStorageKey } = {};
  const first = await world.login(account, () => recovery.key?.privateKey);
  const crypto1 = first.sdk.getCrypto()!;
  const auth = async (makeRequest: (auth: Json | null) => Promise<unknown>) => {
    await makeRequest({ type: 'm.login.password', identifier: { type: 'm.id.user', user: account.localpart }, password: account.password });
  };
  const roomId = await encryptedRoom(frank, [first]);
  await crypto1.bootstrapCrossSigning({ authUploadDeviceSigningKeys: auth });
  const created = await crypto1.createRecoveryKeyFromPassphrase();
  recovery.key = created;
  await crypto1.bootstrapSecretStorage({ createSecretStorageKey: async () => created, setupNewSecretStorage: true });
  expect(await crypto1.isDehydrationSupported()).toBe(true);
  await crypto1.startDehydration({ createNewKey: true });
  const dehydrated = await rawApi(account.home.baseUrl, first.token, 'GET', '/dehydrated_device', undefined, '/_matrix/client/unstable/org.matrix.msc3814.v1');
  expect(dehydrated.status).toBe(200);
  const dehydratedId = dehydrated.json.device_id as string;
  world.stop(first);
  expect((await api(first, 'POST', '/logout', {})).status).toBe(200);

  // frank's crypto learns that erin's devices are now only the dehydrated one.
  await seesDevice(frank, account.userId, dehydratedId);
  await eventually(
    'frank no longer sees the first device',
    async () => ((await frank.sdk.getCrypto()!.getUserDeviceInfo([account.userId], true)).get(account.userId)?.has(first.deviceId) ? undefined : true),
    WAIT_MS,
    200,
  );
  const eventId = await send(frank, roomId, 'for the dehydrated device');
  const second = await world.login(account, () => recovery.key?.privateKey);
  const crypto2 = second.sdk.getCrypto()!;
  await eventually('the second device has the public cross-signing keys', async () => ((await crypto2.userHasCrossSigningKeys(account.userId, true)) ? true : undefined), WAIT_MS, 200);
  await crypto2.bootstrapCrossSigning({ authUploadDeviceSigningKeys: auth });
  // The room key waits for the dehydrated device as a to-device message.
  await eventually(
    'a to-device message for the dehydrated device',
    async () => {
      const r = await rawApi(account.home.baseUrl, second.token, 'POST', `/dehydrated_device/${enc(dehydratedId)}/events`, {}, '/_matrix/client/unstable/org.matrix.msc3814.v1');
      return r.status === 200 && (r.json.events as unknown[]).length > 0 ? true : undefined;
    },
    WAIT_MS,
    200,
  );
  const rehydrated = new Promise<void>((resolve) => second.sdk.once(CryptoEvent.RehydrationCompleted, () => resolve()));
  await crypto2.startDehydration();
  await rehydrated;
  expect(await decryptedBody(second, roomId, eventId)).toBe('for the dehydrated device');
}
