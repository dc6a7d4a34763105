import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import { publishOutgoingEdu, type OutgoingEdu } from '@atrium/federation-client';
import { Errors, MatrixError } from '@atrium/http';
import { canonicalJson, isValidUserId, verifyJsonSignature, type JsonObject } from '@atrium/matrix';
import { RoomStore, StreamAllocator } from '@atrium/rooms';
import { SharedPerStore, type DocumentStore } from '@atrium/storage';
import { backupKeyIsBetter, DEVICE_LISTS_STREAM, E2eeStore, type CrossSigningUsage, type Json, type KeySignatureRecord } from './e2ee-store';
import { crossSigningKeyOf, parseDeviceListUpdate, RemoteDeviceListStore, type DeviceListUpdateOutcome } from './remote-device-lists';
import { RemoteKeys, type RemoteKeysOptions } from './remote-keys';

/**
 * The E2EE key logic of one process (key-server endpoints, the /sync
 * section in client-api). Spec: modules/end_to_end_encryption.md and
 * data/api/client-server/keys.yaml, cross_signing.yaml, key_backup.yaml.
 *
 * Every request is checked completely before anything is written, so bad
 * input gets its error and changes nothing stored.
 */

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isNonNegInt = (v: unknown): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;

/** The object without `signatures` and `unsigned`: what a signature covers (appendices "Signing JSON"). */
function signedPart(value: Json): string {
  const { signatures: _s, unsigned: _u, ...rest } = value;
  return canonicalJson(rest);
}

function serverOf(userId: string): string {
  const colon = userId.indexOf(':');
  return colon < 0 ? '' : userId.slice(colon + 1);
}

/** The device_lists part of a sync token (`s<events>_..._<device_lists>`, docs/client-server-design.md "Sync tokens"). */
export function parseSyncTokenPositions(token: string): { events: number; deviceLists: number } | null {
  if (!/^s\d+(_\d+)*$/.test(token)) return null;
  const parts = token.slice(1).split('_').map(Number);
  return { events: parts[0] ?? 0, deviceLists: parts[6] ?? 0 };
}

export interface DeviceListDelta {
  changed: string[];
  left: string[];
}

export class E2eeService {
  private static readonly opened = new SharedPerStore<E2eeService>();

  private constructor(
    readonly store: E2eeStore,
    readonly rooms: RoomStore,
    /** Remote users' device lists (docs/federation-design.md "Remote device lists"). */
    readonly remoteDeviceLists: RemoteDeviceListStore,
    private readonly accounts: AccountStore,
    private readonly bus: Bus,
    private readonly serverName: string,
  ) {}

  /** One service per document store in a process (the key-server module and the client-api sync section share it in the embedded mode). */
  static shared(documents: DocumentStore, bus: Bus, accounts: AccountStore, serverName: string): Promise<E2eeService> {
    return E2eeService.opened.get(documents, async () => {
      const positions = await StreamAllocator.open(documents);
      return new E2eeService(await E2eeStore.open(documents, positions), await RoomStore.open(documents), await RemoteDeviceListStore.open(documents), accounts, bus, serverName);
    });
  }

  isLocal(userId: string): boolean {
    return serverOf(userId) === this.serverName;
  }

  /** The user and everyone sharing a joined room with them. */
  async usersSharingRoom(userId: string): Promise<Set<string>> {
    const users = new Set<string>([userId]);
    for (const membership of await this.rooms.roomsOfUser(userId, ['join'])) {
      for (const member of await this.rooms.joinedUsers(membership.room_id)) users.add(member);
    }
    return users;
  }

  /** Records a device-list change of `userId` and wakes the /sync of everyone who tracks it (design doc "Waking sync"). */
  async deviceListChanged(userId: string): Promise<void> {
    const position = await this.store.markChanged(userId);
    const audience = await this.usersSharingRoom(userId);
    await this.bus.notify('sync.wake', { stream: DEVICE_LISTS_STREAM, position, user_ids: [...audience] });
  }

  /**
   * `device_lists` of /sync and GET /keys/changes (modules/end_to_end_encryption.md
   * "Tracking the device list for a user"): `changed` holds users sharing a
   * room whose device list changed in the range, and users who newly share a
   * room (they joined one of ours, or we joined theirs); `left` holds users
   * with whom no room is shared any more after a leave in the range.
   */
  async deviceListDelta(userId: string, from: { events: number; deviceLists: number }, to: { events: number; deviceLists: number }): Promise<DeviceListDelta> {
    // Cheap reads first, so an incremental sync with nothing new costs a few queries, not two per joined room.
    const changedUsers = await this.store.changedBetween(from.deviceLists, to.deviceLists);
    const changed = new Set<string>();
    const leftCandidates = new Set<string>();
    if (to.events > from.events) {
      for (const own of await this.rooms.membershipChanges(userId, from.events, to.events)) {
        if (own.membership === 'join') {
          for (const member of await this.rooms.joinedUsers(own.room_id)) if (member !== userId) changed.add(member);
        } else if (own.membership === 'leave' || own.membership === 'ban') {
          for (const member of await this.rooms.joinedUsers(own.room_id)) leftCandidates.add(member);
        }
      }
      // Others' joins and leaves: only rooms with events in the range can hold them (null: too many to list, scan all).
      const active = await this.rooms.roomsWithEventsBetween(from.events, to.events);
      for (const room of await this.rooms.roomsOfUser(userId, ['join'])) {
        if (active && !active.has(room.room_id)) continue;
        for (const member of await this.rooms.membersOfRoom(room.room_id)) {
          if (member.user_id === userId || member.stream <= from.events || member.stream > to.events) continue;
          if (member.membership === 'join') changed.add(member.user_id);
          else if (member.membership === 'leave' || member.membership === 'ban') leftCandidates.add(member.user_id);
        }
      }
    }
    if (changedUsers !== null && changedUsers.size === 0 && changed.size === 0 && leftCandidates.size === 0) return { changed: [], left: [] };
    const shared = await this.usersSharingRoom(userId);
    const keyChanges = changedUsers ?? (await this.store.changedAmong([...shared], from.deviceLists, to.deviceLists));
    for (const user of keyChanges) if (shared.has(user)) changed.add(user);
    const left = [...leftCandidates].filter((u) => u !== userId && !shared.has(u));
    for (const user of left) changed.delete(user);
    return { changed: [...changed].sort(), left: left.sort() };
  }

  /**
   * A device was deleted (device_management.yaml; "its keys are deleted with it"):
   * its device keys, one-time and fallback keys go, and the user's device list changes.
   */
  async deviceDeleted(userId: string, deviceId: string): Promise<void> {
    await this.store.deleteDevice(userId, deviceId);
    await this.deviceListChanged(userId);
    await this.federate({ edu_type: 'm.device_list_update', content: { user_id: userId, device_id: deviceId, deleted: true }, user_id: userId });
  }

  /**
   * Signatures on a local user's own keys reach the servers sharing a room
   * with them, as Synapse sends them: a signed device as an
   * m.device_list_update carrying its keys with the signatures (what
   * /user/keys/query would answer, without the display name), a signed
   * master key as an m.signing_key_update.
   */
  private async federateOwnSignatures(userId: string, signed: ReadonlySet<string>): Promise<void> {
    if (!this.isLocal(userId)) return;
    const keys = await this.localKeys(userId, [], null);
    for (const keyId of signed) {
      const device = keys.devices[keyId];
      if (device) {
        const { unsigned: _unsigned, ...deviceKeys } = device;
        await this.federate({ edu_type: 'm.device_list_update', content: { user_id: userId, device_id: keyId, keys: deviceKeys as JsonObject }, user_id: userId });
      } else if (keys.master && isObject(keys.master.keys) && Object.values(keys.master.keys).includes(keyId)) {
        await this.federate({ edu_type: 'm.signing_key_update', content: { user_id: userId, master_key: keys.master as JsonObject }, user_id: userId });
      }
    }
  }

  /**
   * A local user's join is stored (room-server calls this for every join,
   * local or through another server): server-server-api "Device Management"
   * says m.device_list_update EDUs "must be sent whenever ... that user joins
   * a room which contains servers which are not already receiving updates for
   * that user's device list". The room's servers that share no other room
   * with the user get each current device, and the master and self-signing
   * keys (m.signing_key_update). This also mends a change made while a join
   * through another server was under way: its update went to the servers of
   * the user's rooms then, without the new room, though the resident server
   * had accepted the join at send_join and may have fetched the list before
   * the change (matrix-js-sdk uploads its keys right after its first sync,
   * often while joining).
   */
  async deviceListsOnJoin(userId: string, roomId: string): Promise<void> {
    if (!this.isLocal(userId)) return;
    const servers = new Set((await this.rooms.joinedUsers(roomId)).map(serverOf));
    servers.delete(this.serverName);
    for (const other of await this.rooms.roomsOfUser(userId, ['join'])) {
      if (servers.size === 0) return;
      if (other.room_id === roomId) continue;
      for (const member of await this.rooms.joinedUsers(other.room_id)) servers.delete(serverOf(member));
    }
    if (servers.size === 0) return;
    const destinations = [...servers].sort();
    const keys = await this.localKeys(userId, [], null);
    for (const [deviceId, device] of Object.entries(keys.devices)) {
      const { unsigned, ...deviceKeys } = device;
      const content: JsonObject = { user_id: userId, device_id: deviceId, keys: deviceKeys as JsonObject };
      if (isObject(unsigned) && typeof unsigned.device_display_name === 'string') content['device_display_name'] = unsigned.device_display_name;
      await this.federate({ edu_type: 'm.device_list_update', content, destinations });
    }
    if (keys.master || keys.selfSigning) {
      const content: JsonObject = { user_id: userId };
      if (keys.master) content['master_key'] = keys.master as JsonObject;
      if (keys.selfSigning) content['self_signing_key'] = keys.selfSigning as JsonObject;
      await this.federate({ edu_type: 'm.signing_key_update', content, destinations });
    }
  }

  /**
   * Tells the servers sharing a room with a local user about a change of
   * their devices or cross-signing keys (server-server-api "Device
   * Management": m.device_list_update, whose stream_id/prev_id
   * federation-outbound adds, and m.signing_key_update). The local write
   * stands if the bus fails: remote servers resync on the next update's gap.
   */
  private async federate(edu: OutgoingEdu): Promise<void> {
    // The user is the content's: the EDU may be addressed to named servers (deviceListsOnJoin), not by user.
    if (typeof edu.content['user_id'] !== 'string' || !this.isLocal(edu.content['user_id'])) return;
    try {
      await publishOutgoingEdu(this.bus, edu);
    } catch {
      // See above: best effort.
    }
  }

  // ---- POST /keys/upload ----

  async upload(userId: string, deviceId: string, body: Json): Promise<{ one_time_key_counts: Record<string, number> }> {
    const deviceKeys = body.device_keys;
    const oneTimeKeys = body.one_time_keys;
    const fallbackKeys = body.fallback_keys;
    if (deviceKeys !== undefined && deviceKeys !== null) this.checkDeviceKeys(userId, deviceId, deviceKeys);
    const otks = this.checkKeyMap(oneTimeKeys, 'one_time_keys');
    const fallbacks = this.checkKeyMap(fallbackKeys, 'fallback_keys');
    // keys.yaml: a one-time key ID uploaded again with other content is an error; the same content is an idempotent retry.
    const newOtks: Array<[string, unknown]> = [];
    for (const [keyId, key] of otks) {
      const existing = await this.store.getOneTimeKey(userId, deviceId, keyId);
      if (existing) {
        if (canonicalJson(JSON.parse(existing.json)) !== canonicalJson(key)) {
          throw Errors.invalidParam(`One time key ${keyId} already exists with other content`);
        }
      } else newOtks.push([keyId, key]);
    }
    if (isObject(deviceKeys)) {
      const existing = await this.store.getDeviceKeys(userId, deviceId);
      if (!existing || canonicalJson(JSON.parse(existing.json)) !== canonicalJson(deviceKeys)) {
        await this.store.putDeviceKeys(userId, deviceId, deviceKeys);
        await this.deviceListChanged(userId);
        await this.federate({ edu_type: 'm.device_list_update', content: { user_id: userId, device_id: deviceId, keys: deviceKeys as JsonObject }, user_id: userId });
      }
    }
    await this.store.insertOneTimeKeys(userId, deviceId, newOtks);
    for (const [keyId, key] of fallbacks) {
      // "Fallback keys": a new one replaces the old; re-uploading the same key keeps its `used` mark.
      const algorithm = keyId.split(':')[0] ?? '';
      const existing = await this.store.getFallbackKey(userId, deviceId, algorithm);
      if (existing && existing.key_id === keyId && canonicalJson(JSON.parse(existing.json)) === canonicalJson(key)) continue;
      await this.store.putFallbackKey(userId, deviceId, keyId, key);
    }
    return { one_time_key_counts: await this.store.oneTimeKeyCounts(userId, deviceId) };
  }

  /** DeviceKeys (keys.yaml): user_id/device_id of the requester, algorithms, keys, and a valid self-signature by `ed25519:<device_id>`. */
  private checkDeviceKeys(userId: string, deviceId: string, value: unknown): asserts value is Json {
    if (!isObject(value)) throw Errors.badJson('"device_keys" must be an object');
    if (value.user_id !== userId) throw Errors.invalidParam('device_keys.user_id does not match the access token');
    if (value.device_id !== deviceId) throw Errors.invalidParam('device_keys.device_id does not match the access token');
    const algorithms = value.algorithms;
    if (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every((a) => typeof a === 'string' && a.length > 0)) {
      throw Errors.badJson('device_keys.algorithms must be a non-empty array of strings');
    }
    const keys = value.keys;
    if (!isObject(keys) || !Object.entries(keys).every(([k, v]) => /^[^:]+:.+$/.test(k) && typeof v === 'string')) {
      throw Errors.badJson('device_keys.keys must map "<algorithm>:<device_id>" to strings');
    }
    const signingKey = keys[`ed25519:${deviceId}`];
    if (typeof signingKey !== 'string') throw Errors.badJson(`device_keys.keys must contain ed25519:${deviceId}`);
    if (!isObject(value.signatures)) throw Errors.badJson('device_keys.signatures must be an object');
    if (!verifyJsonSignature(value, userId, `ed25519:${deviceId}`, signingKey)) {
      throw Errors.invalidParam('device_keys is not signed by the device key ed25519:' + deviceId);
    }
  }

  private checkKeyMap(value: unknown, name: string): Array<[string, unknown]> {
    if (value === undefined || value === null) return [];
    if (!isObject(value)) throw Errors.badJson(`"${name}" must be an object`);
    const out: Array<[string, unknown]> = [];
    for (const [keyId, key] of Object.entries(value)) {
      if (!/^[^:]+:.+$/.test(keyId)) throw Errors.badJson(`${name}: key ID ${keyId} must be "<algorithm>:<key_id>"`);
      if (typeof key !== 'string' && !isObject(key)) throw Errors.badJson(`${name}.${keyId} must be a string or an object`);
      if (isObject(key) && typeof key.key !== 'string') throw Errors.badJson(`${name}.${keyId}.key must be a string`);
      out.push([keyId, key]);
    }
    return out;
  }

  // ---- POST /keys/query ----

  /**
   * POST /keys/query. Local users are read from storage; remote users are
   * asked of their servers when `remote` is given (keys.yaml: "If any remote
   * homeservers could not be reached, they are recorded here" under
   * `failures`), else their servers are listed as failed.
   */
  async query(requester: string, body: Json, remote?: RemoteKeysOptions): Promise<Json> {
    const wanted = checkDeviceKeysQuery(body);
    const timeoutMs = timeoutOf(body);
    const deviceKeys: Record<string, Record<string, Json>> = {};
    const masterKeys: Record<string, Json> = {};
    const selfSigningKeys: Record<string, Json> = {};
    const userSigningKeys: Record<string, Json> = {};
    const failures: Record<string, Json> = {};
    const remoteUsers = new Map<string, string[]>();
    for (const [user, devices] of wanted) {
      if (!this.isLocal(user)) {
        remoteUsers.set(user, devices);
        continue;
      }
      const keys = await this.localKeys(user, devices, requester);
      deviceKeys[user] = keys.devices;
      if (keys.master) masterKeys[user] = keys.master;
      if (keys.selfSigning) selfSigningKeys[user] = keys.selfSigning;
      if (keys.userSigning) userSigningKeys[user] = keys.userSigning;
    }
    if (remoteUsers.size > 0) {
      if (remote) {
        const answer = await new RemoteKeys(this, remote).query(remoteUsers, timeoutMs);
        await this.mergeOwnSignaturesOfRemote(requester, answer.master_keys);
        Object.assign(deviceKeys, answer.device_keys);
        Object.assign(masterKeys, answer.master_keys);
        Object.assign(selfSigningKeys, answer.self_signing_keys);
        Object.assign(failures, answer.failures);
      } else {
        for (const user of remoteUsers.keys()) failures[serverOf(user)] = { errcode: 'M_UNRECOGNIZED', error: 'Federation is not available in this process' };
      }
    }
    return { device_keys: deviceKeys, master_keys: masterKeys, self_signing_keys: selfSigningKeys, user_signing_keys: userSigningKeys, failures };
  }

  /**
   * The keys of a local user as /keys/query and the federation's
   * /user/keys/query give them. `requester` null: another server asks, so no
   * user-signing key and only the user's own signatures (user_keys.yaml:
   * "along with the signatures uploaded via /keys/signatures/upload that the
   * user is allowed to see").
   */
  private async localKeys(user: string, devices: readonly string[], requester: string | null): Promise<{ devices: Record<string, Json>; master?: Json; selfSigning?: Json; userSigning?: Json }> {
    const signatures = await this.store.signaturesOf(user);
    const visible = (s: KeySignatureRecord): boolean => s.signer_user === user || s.signer_user === requester;
    const existing = new Map((await this.accounts.listDevices(user)).map((d) => [d.device_id, d]));
    const out: Record<string, Json> = {};
    for (const record of await this.store.devicesKeysOf(user)) {
      const device = existing.get(record.device_id);
      if (!device) continue; // deleted device: its keys are gone
      if (devices.length > 0 && !devices.includes(record.device_id)) continue;
      const keys = JSON.parse(record.json) as Json;
      mergeSignatures(keys, signatures.filter((s) => s.target_key === record.device_id && visible(s)));
      const unsigned = isObject(keys.unsigned) ? keys.unsigned : {};
      if (device.display_name !== null) unsigned.device_display_name = device.display_name;
      keys.unsigned = unsigned;
      out[record.device_id] = keys;
    }
    const result: { devices: Record<string, Json>; master?: Json; selfSigning?: Json; userSigning?: Json } = { devices: out };
    const cross = await this.store.crossSigningKeys(user);
    const master = cross.get('master');
    if (master) {
      const key = JSON.parse(master.json) as Json;
      mergeSignatures(key, signatures.filter((s) => s.target_key === master.public_key && visible(s)));
      result.master = key;
    }
    const ssk = cross.get('self_signing');
    if (ssk) result.selfSigning = JSON.parse(ssk.json) as Json;
    // keys.yaml: user_signing_keys are only given for the requesting user (never to other servers: user_keys.yaml has no such field).
    const usk = cross.get('user_signing');
    if (usk && user === requester) result.userSigning = JSON.parse(usk.json) as Json;
    return result;
  }

  // ---- POST /keys/claim ----

  /** POST /keys/claim; remote users as for `query`. */
  async claim(body: Json, remote?: RemoteKeysOptions): Promise<Json> {
    const wanted = checkOneTimeKeysClaim(body);
    const timeoutMs = timeoutOf(body);
    const result: Record<string, Record<string, Json>> = {};
    const failures: Record<string, Json> = {};
    const remoteUsers = new Map<string, Record<string, string>>();
    for (const [user, devices] of wanted) {
      if (!this.isLocal(user)) {
        remoteUsers.set(user, devices);
        continue;
      }
      const claimed = await this.claimLocal(user, devices);
      if (claimed) result[user] = claimed;
    }
    if (remoteUsers.size > 0) {
      if (remote) {
        const answer = await new RemoteKeys(this, remote).claim(remoteUsers, timeoutMs);
        Object.assign(result, answer.one_time_keys);
        Object.assign(failures, answer.failures);
      } else {
        for (const user of remoteUsers.keys()) failures[serverOf(user)] = { errcode: 'M_UNRECOGNIZED', error: 'Federation is not available in this process' };
      }
    }
    return { one_time_keys: result, failures };
  }

  /** "Claiming one-time keys": a one-time key if one is left, else the fallback key (which is then marked used). */
  private async claimLocal(user: string, devices: Record<string, string>): Promise<Record<string, Json> | undefined> {
    let out: Record<string, Json> | undefined;
    const entries = Object.entries(devices);
    // Many devices of one user: one read of the user's keys instead of one per device.
    const batch = entries.length >= BATCH_CLAIM_DEVICES ? await this.store.claimOneTimeKeysOfDevices(user, new Map(entries)) : undefined;
    for (const [deviceId, algorithm] of entries) {
      const oneTime = batch ? batch.get(deviceId) : await this.store.claimOneTimeKey(user, deviceId, algorithm);
      const claimed = oneTime ?? (await this.store.claimFallbackKey(user, deviceId, algorithm));
      if (!claimed) continue;
      ((out ??= {})[deviceId] ??= {})[claimed.keyId] = claimed.key;
    }
    return out;
  }

  // ---- the federation side (server-server-api "End-to-End Encryption", "Device Management") ----

  /** Refuses users of other servers: user_keys.yaml and user_devices.yaml ask for "users local to the receiving homeserver". */
  private requireLocal(users: Iterable<string>): void {
    for (const user of users) {
      if (!this.isLocal(user)) throw Errors.invalidParam(`${user} is not a user of this server`);
    }
  }

  /** POST /_matrix/federation/v1/user/keys/query (user_keys.yaml). */
  async federationQuery(body: Json): Promise<Json> {
    const wanted = checkDeviceKeysQuery(body);
    this.requireLocal(wanted.keys());
    const deviceKeys: Record<string, Record<string, Json>> = {};
    const masterKeys: Record<string, Json> = {};
    const selfSigningKeys: Record<string, Json> = {};
    for (const [user, devices] of wanted) {
      const keys = await this.localKeys(user, devices, null);
      deviceKeys[user] = keys.devices;
      if (keys.master) masterKeys[user] = keys.master;
      if (keys.selfSigning) selfSigningKeys[user] = keys.selfSigning;
    }
    return { device_keys: deviceKeys, master_keys: masterKeys, self_signing_keys: selfSigningKeys };
  }

  /** POST /_matrix/federation/v1/user/keys/claim (user_keys.yaml): each one-time key is handed out once, then the fallback key. */
  async federationClaim(body: Json): Promise<Json> {
    const wanted = checkOneTimeKeysClaim(body);
    this.requireLocal(wanted.keys());
    const result: Record<string, Record<string, Json>> = {};
    for (const [user, devices] of wanted) {
      const claimed = await this.claimLocal(user, devices);
      if (claimed) result[user] = claimed;
    }
    return { one_time_keys: result };
  }

  /**
   * GET /_matrix/federation/v1/user/devices/{userId} (user_devices.yaml):
   * every device of the account (with its keys when it uploaded some, and its
   * display name), the master and self-signing keys. `streamId` is the ID of
   * the user's last m.device_list_update, which federation-outbound assigns.
   * An unknown local user has no devices ("May be empty").
   */
  async userDevices(userId: string, streamId: number): Promise<Json> {
    this.requireLocal([userId]);
    const keys = await this.localKeys(userId, [], null);
    const devices: Json[] = [];
    for (const device of await this.accounts.listDevices(userId)) {
      const deviceKeys = keys.devices[device.device_id];
      // A device that never uploaded keys is listed without them (`keys` is required: an empty object stands for none).
      const entry: Json = { device_id: device.device_id, keys: deviceKeys ?? {} };
      if (device.display_name !== null) entry.device_display_name = device.display_name;
      devices.push(entry);
    }
    const answer: Json = { user_id: userId, stream_id: streamId, devices };
    if (keys.master) answer.master_key = keys.master;
    if (keys.selfSigning) answer.self_signing_key = keys.selfSigning;
    return answer;
  }

  /**
   * An m.device_list_update EDU received from `origin` (for the EDU consumer
   * of docs/federation-design.md "Remote device lists"): applied to the cache
   * of the user's list, and the user's device list marked changed so local
   * clients sharing a room see them in `device_lists.changed` and query again.
   * Malformed content, or a user not of `origin`, is dropped.
   */
  async remoteDeviceListUpdate(origin: string, content: unknown): Promise<DeviceListUpdateOutcome | 'malformed'> {
    const update = parseDeviceListUpdate(origin, content);
    if (!update) return 'malformed';
    const outcome = await this.remoteDeviceLists.applyUpdate(update);
    if (outcome !== 'duplicate') await this.deviceListChanged(update.user_id);
    return outcome;
  }

  /** An m.signing_key_update EDU (definitions/event-schemas/m.signing_key_update) from `origin`. */
  async remoteSigningKeyUpdate(origin: string, content: unknown): Promise<'applied' | 'not-cached' | 'malformed'> {
    if (!isObject(content) || typeof content.user_id !== 'string' || serverOf(content.user_id) !== origin) return 'malformed';
    const userId = content.user_id;
    const master = crossSigningKeyOf(userId, content.master_key, 'master');
    const selfSigning = crossSigningKeyOf(userId, content.self_signing_key, 'self_signing');
    if (!master && !selfSigning) return 'malformed';
    const cached = await this.remoteDeviceLists.applySigningKeyUpdate(userId, master, selfSigning);
    await this.deviceListChanged(userId);
    return cached ? 'applied' : 'not-cached';
  }

  // ---- cross-signing ----

  /**
   * POST /keys/device_signing/upload. `authorise` runs user-interactive auth;
   * cross_signing.yaml (v1.11) lets a client skip it when no master key is
   * stored yet, or when every key sent equals the stored one (an idempotent retry).
   */
  async uploadCrossSigning(userId: string, body: Json, authorise: () => Promise<void>): Promise<void> {
    const given: Partial<Record<CrossSigningUsage, { key: Json; publicKey: string }>> = {};
    const fields: Array<[string, CrossSigningUsage]> = [['master_key', 'master'], ['self_signing_key', 'self_signing'], ['user_signing_key', 'user_signing']];
    for (const [field, usage] of fields) {
      const value = body[field];
      if (value === undefined || value === null) continue;
      given[usage] = { key: value as Json, publicKey: checkCrossSigningKey(userId, value, usage, field) };
    }
    const stored = await this.store.crossSigningKeys(userId);
    const storedMaster = stored.get('master');
    const unchanged = fields.every(([, usage]) => {
      const g = given[usage];
      if (!g) return true;
      const s = stored.get(usage);
      return s !== undefined && canonicalJson(JSON.parse(s.json)) === canonicalJson(g.key);
    });
    if (storedMaster && !(given.master && unchanged)) await authorise();
    const masterPublic = given.master?.publicKey ?? storedMaster?.public_key;
    if (!masterPublic && (given.self_signing || given.user_signing)) throw Errors.invalidParam('A master key must be uploaded first');
    // "Cross-signing": the self-signing and user-signing keys must be signed by the master key.
    for (const usage of ['self_signing', 'user_signing'] as const) {
      const g = given[usage];
      if (g && !verifyJsonSignature(g.key, userId, `ed25519:${masterPublic}`, masterPublic ?? '')) {
        throw Errors.invalidParam(`${usage}_key is not signed by the master key`);
      }
    }
    if (unchanged && Object.keys(given).length > 0 && storedMaster) return;
    for (const [, usage] of fields) {
      const g = given[usage];
      if (g) await this.store.putCrossSigningKey(userId, usage, g.publicKey, g.key);
    }
    if (Object.keys(given).length > 0) {
      await this.deviceListChanged(userId);
      // m.signing_key_update carries the master and self-signing keys; the user-signing key stays private to the user.
      if (given.master || given.self_signing) {
        const content: JsonObject = { user_id: userId };
        if (given.master) content['master_key'] = given.master.key as JsonObject;
        if (given.self_signing) content['self_signing_key'] = given.self_signing.key as JsonObject;
        await this.federate({ edu_type: 'm.signing_key_update', content, user_id: userId });
      }
    }
  }

  /**
   * POST /keys/signatures/upload (cross_signing.yaml): a user's devices signed
   * by their self-signing key, their master key signed by one of their
   * devices, and other users' master keys signed by the user-signing key.
   * Each key that fails gets its own entry in `failures`.
   */
  async uploadSignatures(userId: string, body: Json, remote?: RemoteKeysOptions): Promise<{ failures: Record<string, Record<string, Json>> }> {
    const failures: Record<string, Record<string, Json>> = {};
    const fail = (user: string, keyId: string, errcode: string, error: string): void => {
      (failures[user] ??= {})[keyId] = { errcode, error };
    };
    // The shape is checked before any signature is stored, so a malformed request changes nothing.
    for (const [targetUser, keys] of Object.entries(body)) {
      if (!isObject(keys)) throw Errors.badJson(`${targetUser} must map key IDs to signed keys`);
    }
    const own = await this.store.crossSigningKeys(userId);
    const changedUsers = new Set<string>();
    /** The user's own keys (device IDs, master public key) that got a signature: other servers hear of them. */
    const ownSigned = new Set<string>();
    for (const [targetUser, keys] of Object.entries(body) as Array<[string, Json]>) {
      for (const [keyId, signed] of Object.entries(keys)) {
        if (!isObject(signed) || !isObject(signed.signatures) || !isObject(signed.signatures[userId])) {
          fail(targetUser, keyId, 'M_INVALID_SIGNATURE', 'No signatures by the uploading user');
          continue;
        }
        const mine = signed.signatures[userId] as Json;
        if (!this.isLocal(targetUser)) {
          // Another server's user: only their master key, signed by our user-signing key. The signature stays
          // here, shown only to its signer ("Users will only be able to see signatures made by their own
          // user-signing keys"), so it is not sent to the user's server.
          const master = await this.remoteMasterKey(targetUser, remote);
          const usk = own.get('user_signing');
          if (!master || masterPublicKey(master) !== keyId) fail(targetUser, keyId, 'M_NOT_FOUND', 'No such key');
          else if (!usk) fail(targetUser, keyId, 'M_INVALID_SIGNATURE', 'No user-signing key to check this signature with');
          else if (signedPart(master) !== signedPart(signed)) fail(targetUser, keyId, 'M_INVALID_SIGNATURE', 'The signed object differs from the master key');
          else {
            const uskId = `ed25519:${usk.public_key}`;
            const signature = mine[uskId];
            if (typeof signature !== 'string' || !verifyJsonSignature(signed, userId, uskId, usk.public_key)) fail(targetUser, keyId, 'M_INVALID_SIGNATURE', 'Invalid signature');
            else {
              await this.store.addSignature(targetUser, keyId, userId, uskId, signature);
              changedUsers.add(userId);
            }
          }
          continue;
        }
        const targetCross = targetUser === userId ? own : await this.store.crossSigningKeys(targetUser);
        const targetMaster = targetCross.get('master');
        const deviceRecord = targetUser === userId ? await this.store.getDeviceKeys(userId, keyId) : null;
        let storedJson: string | undefined;
        let signerKeyId: string | undefined;
        let signerPublic: string | undefined;
        if (deviceRecord) {
          storedJson = deviceRecord.json;
          const ssk = own.get('self_signing');
          if (ssk) [signerKeyId, signerPublic] = [`ed25519:${ssk.public_key}`, ssk.public_key];
        } else if (targetMaster && targetMaster.public_key === keyId) {
          storedJson = targetMaster.json;
          if (targetUser === userId) {
            // The master key signed by one of the user's own devices.
            for (const sigKeyId of Object.keys(mine)) {
              const device = sigKeyId.startsWith('ed25519:') ? await this.store.getDeviceKeys(userId, sigKeyId.slice(8)) : null;
              const pub = device ? (JSON.parse(device.json) as { keys?: Record<string, string> }).keys?.[sigKeyId] : undefined;
              if (pub) [signerKeyId, signerPublic] = [sigKeyId, pub];
            }
          } else {
            const usk = own.get('user_signing');
            if (usk) [signerKeyId, signerPublic] = [`ed25519:${usk.public_key}`, usk.public_key];
          }
        } else {
          fail(targetUser, keyId, 'M_NOT_FOUND', 'No such key');
          continue;
        }
        if (!signerKeyId || !signerPublic) {
          fail(targetUser, keyId, 'M_INVALID_SIGNATURE', 'No signing key to check this signature with');
          continue;
        }
        if (signedPart(JSON.parse(storedJson) as Json) !== signedPart(signed)) {
          fail(targetUser, keyId, 'M_INVALID_SIGNATURE', 'The signed object differs from the stored key');
          continue;
        }
        const signature = mine[signerKeyId];
        if (typeof signature !== 'string' || !verifyJsonSignature(signed, userId, signerKeyId, signerPublic)) {
          fail(targetUser, keyId, 'M_INVALID_SIGNATURE', 'Invalid signature');
          continue;
        }
        await this.store.addSignature(targetUser, keyId, userId, signerKeyId, signature);
        if (targetUser === userId) ownSigned.add(keyId);
        // Others' signatures by our user-signing key are visible only to us: only our own trackers need to refetch.
        changedUsers.add(userId);
      }
    }
    for (const user of changedUsers) await this.deviceListChanged(user);
    if (ownSigned.size > 0) {
      // Federation is best effort here: the signatures are stored and answered whatever happens to the EDUs.
      await this.federateOwnSignatures(userId, ownSigned).catch(() => undefined);
    }
    return { failures };
  }

  /** A remote user's master key: from the device list cache, else asked of their server (when `remote` is given). */
  private async remoteMasterKey(userId: string, remote?: RemoteKeysOptions): Promise<Json | null> {
    const cached = await this.remoteDeviceLists.get(userId);
    if (cached?.masterKey) return cached.masterKey;
    if (!remote) return null;
    const answer = await new RemoteKeys(this, remote).query(new Map([[userId, []]]), DEFAULT_REMOTE_TIMEOUT_MS);
    return answer.master_keys[userId] ?? null;
  }

  /** Adds to remote users' master keys the signatures `requester` made of them with their user-signing key. */
  private async mergeOwnSignaturesOfRemote(requester: string, masterKeys: Record<string, Json>): Promise<void> {
    for (const [user, key] of Object.entries(masterKeys)) {
      const pub = masterPublicKey(key);
      const mine = (await this.store.signaturesOf(user)).filter((s) => s.signer_user === requester && s.target_key === pub);
      if (mine.length > 0) {
        const copy: Json = { ...key, signatures: isObject(key.signatures) ? structuredClone(key.signatures) : {} };
        mergeSignatures(copy, mine);
        masterKeys[user] = copy;
      }
    }
  }

  // ---- key backup (key_backup.yaml) ----

  async createBackup(userId: string, body: Json): Promise<{ version: string }> {
    if (typeof body.algorithm !== 'string') throw Errors.badJson('"algorithm" must be a string');
    if (!isObject(body.auth_data)) throw Errors.badJson('"auth_data" must be an object');
    return { version: await this.store.createBackupVersion(userId, body.algorithm, body.auth_data) };
  }

  async getBackup(userId: string, version?: string): Promise<Json> {
    const record = version === undefined ? await this.store.currentBackupVersion(userId) : await this.store.backupVersion(userId, version);
    if (!record) throw Errors.notFound('No backup found');
    return {
      algorithm: record.algorithm,
      auth_data: JSON.parse(record.auth_data) as Json,
      count: await this.store.countBackupKeys(userId, record.version),
      etag: String(record.etag),
      version: record.version,
    };
  }

  async updateBackup(userId: string, version: string, body: Json): Promise<void> {
    const record = await this.store.backupVersion(userId, version);
    if (!record) throw Errors.notFound('No backup found');
    if (typeof body.algorithm !== 'string') throw Errors.badJson('"algorithm" must be a string');
    if (!isObject(body.auth_data)) throw Errors.badJson('"auth_data" must be an object');
    if (body.algorithm !== record.algorithm) throw Errors.invalidParam('The algorithm of a backup cannot change');
    if (body.version !== undefined && body.version !== version) throw Errors.invalidParam('"version" does not match the path');
    await this.store.updateBackupAuthData(userId, version, body.auth_data);
  }

  async deleteBackup(userId: string, version: string): Promise<void> {
    if (!(await this.store.deleteBackupVersion(userId, version))) throw Errors.notFound('No backup found');
  }

  /** PUT /room_keys/keys[/room[/session]]: only the current version takes keys (403 M_WRONG_ROOM_KEYS_VERSION otherwise). */
  async putBackupKeys(userId: string, version: string | undefined, rooms: Record<string, Record<string, unknown>>): Promise<{ count: number; etag: string }> {
    if (version === undefined) throw Errors.missingParam('version');
    const current = await this.store.currentBackupVersion(userId);
    if (!current) throw Errors.notFound('No backup found');
    if (current.version !== version) {
      throw new MatrixError(403, 'M_WRONG_ROOM_KEYS_VERSION', 'Wrong backup version.', { current_version: current.version });
    }
    const checked: Array<[string, string, { first_message_index: number; forwarded_count: number; is_verified: boolean }, Json]> = [];
    for (const [roomId, sessions] of Object.entries(rooms)) {
      for (const [sessionId, data] of Object.entries(sessions)) {
        if (!isObject(data) || !isNonNegInt(data.first_message_index) || !isNonNegInt(data.forwarded_count) || typeof data.is_verified !== 'boolean' || !isObject(data.session_data)) {
          throw Errors.badJson(`Key data of ${roomId} ${sessionId} must have first_message_index, forwarded_count, is_verified and session_data`);
        }
        checked.push([roomId, sessionId, { first_message_index: data.first_message_index, forwarded_count: data.forwarded_count, is_verified: data.is_verified }, data]);
      }
    }
    let changed = false;
    for (const [roomId, sessionId, meta, data] of checked) {
      const existing = await this.store.getBackupKey(userId, version, roomId, sessionId);
      if (existing && !backupKeyIsBetter(meta, existing)) continue;
      await this.store.putBackupKey(userId, version, roomId, sessionId, meta, data);
      changed = true;
    }
    if (changed) await this.store.touchBackup(userId, version);
    return this.backupSummary(userId, version);
  }

  private async backupSummary(userId: string, version: string): Promise<{ count: number; etag: string }> {
    const record = await this.store.backupVersion(userId, version);
    return { count: await this.store.countBackupKeys(userId, version), etag: String(record?.etag ?? 0) };
  }

  private async requireVersion(userId: string, version: string | undefined): Promise<string> {
    if (version === undefined) throw Errors.missingParam('version');
    if (!(await this.store.backupVersion(userId, version))) throw Errors.notFound('Unknown backup version');
    return version;
  }

  async getBackupKeys(userId: string, versionParam: string | undefined, roomId?: string, sessionId?: string): Promise<Json> {
    const version = await this.requireVersion(userId, versionParam);
    const rows = await this.store.backupKeysOf(userId, version, roomId, sessionId);
    const data = (r: { json: string }): Json => JSON.parse(r.json) as Json;
    if (sessionId !== undefined) {
      const row = rows[0];
      if (!row) throw Errors.notFound('No such session key');
      return data(row);
    }
    if (roomId !== undefined) {
      const sessions: Record<string, Json> = {};
      for (const r of rows) sessions[r.session_id] = data(r);
      return { sessions };
    }
    const rooms: Record<string, { sessions: Record<string, Json> }> = {};
    for (const r of rows) (rooms[r.room_id] ??= { sessions: {} }).sessions[r.session_id] = data(r);
    return { rooms };
  }

  async deleteBackupKeys(userId: string, versionParam: string | undefined, roomId?: string, sessionId?: string): Promise<{ count: number; etag: string }> {
    const version = await this.requireVersion(userId, versionParam);
    if ((await this.store.deleteBackupKeys(userId, version, roomId, sessionId)) > 0) await this.store.touchBackup(userId, version);
    return this.backupSummary(userId, version);
  }
}

/** CrossSigningKey (cross_signing.yaml): the user's, with the usage, and exactly one ed25519 key. Returns the public key. */
function checkCrossSigningKey(userId: string, value: unknown, usage: CrossSigningUsage, field: string): string {
  if (!isObject(value)) throw Errors.badJson(`"${field}" must be an object`);
  if (value.user_id !== userId) throw Errors.invalidParam(`${field}.user_id does not match the access token`);
  if (!Array.isArray(value.usage) || !value.usage.includes(usage)) throw Errors.invalidParam(`${field}.usage must contain "${usage}"`);
  const keys = value.keys;
  if (!isObject(keys)) throw Errors.badJson(`${field}.keys must be an object`);
  const entries = Object.entries(keys);
  const [first] = entries;
  if (entries.length !== 1 || !first || typeof first[1] !== 'string' || !first[0].startsWith('ed25519:') || first[0].slice(8) !== first[1]) {
    throw Errors.invalidParam(`${field}.keys must hold one ed25519 key whose ID is the key`);
  }
  return first[1];
}

/** From this many devices of one user in a claim, their one-time keys are read in one query (E2eeStore.claimOneTimeKeysOfDevices). */
const BATCH_CLAIM_DEVICES = 8;

/** keys.yaml `timeout`: "10 seconds is the recommended default". Bounded, so a client cannot hold a request open for long. */
export const DEFAULT_REMOTE_TIMEOUT_MS = 10_000;
const MAX_REMOTE_TIMEOUT_MS = 60_000;

function timeoutOf(body: Json): number {
  const t = body.timeout;
  if (t === undefined || t === null) return DEFAULT_REMOTE_TIMEOUT_MS;
  if (typeof t !== 'number' || !Number.isFinite(t) || t < 0) throw Errors.badJson('"timeout" must be a non-negative integer');
  return Math.min(Math.floor(t), MAX_REMOTE_TIMEOUT_MS);
}

/** `device_keys` of a /keys/query body (client or federation): user ID to a list of device IDs. */
function checkDeviceKeysQuery(body: Json): Map<string, string[]> {
  const wanted = body.device_keys;
  if (!isObject(wanted)) throw Errors.badJson('"device_keys" must be an object');
  const out = new Map<string, string[]>();
  for (const [user, devices] of Object.entries(wanted)) {
    if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) throw Errors.badJson(`device_keys.${user} must be an array of device IDs`);
    if (!isValidUserId(user, 'historical')) throw Errors.invalidParam(`Invalid user ID ${JSON.stringify(user)}`);
    out.set(user, devices as string[]);
  }
  return out;
}

/** `one_time_keys` of a /keys/claim body: user ID to device ID to algorithm. */
function checkOneTimeKeysClaim(body: Json): Map<string, Record<string, string>> {
  const wanted = body.one_time_keys;
  if (!isObject(wanted)) throw Errors.badJson('"one_time_keys" must be an object');
  const out = new Map<string, Record<string, string>>();
  for (const [user, devices] of Object.entries(wanted)) {
    if (!isObject(devices) || !Object.values(devices).every((a) => typeof a === 'string')) throw Errors.badJson(`one_time_keys.${user} must map device IDs to algorithms`);
    if (!isValidUserId(user, 'historical')) throw Errors.invalidParam(`Invalid user ID ${JSON.stringify(user)}`);
    out.set(user, devices as Record<string, string>);
  }
  return out;
}

/** The public key of a CrossSigningKey (its one `ed25519:` key). */
function masterPublicKey(key: Json): string | undefined {
  const keys = key.keys;
  if (!isObject(keys)) return undefined;
  const value = Object.values(keys)[0];
  return typeof value === 'string' ? value : undefined;
}

function mergeSignatures(key: Json, extra: KeySignatureRecord[]): void {
  if (extra.length === 0) return;
  const signatures = (isObject(key.signatures) ? key.signatures : {}) as Record<string, Record<string, string>>;
  for (const s of extra) (signatures[s.signer_user] ??= {})[s.signer_key_id] = s.signature;
  key.signatures = signatures;
}
