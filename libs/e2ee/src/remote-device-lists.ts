import { randomUUID } from 'node:crypto';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/**
 * The cache of remote users' device lists (server-server-api "Device
 * Management"): "When a server wishes to determine a remote user's device
 * list for the first time, it should populate a local cache from the result
 * of a `/user/keys/query` API on the remote server. However, subsequent
 * updates to the cache should be applied by consuming `m.device_list_update`
 * EDUs." Atrium fills it from `GET /_matrix/federation/v1/user/devices/{userId}`
 * (user_devices.yaml), whose `stream_id` correlates with the EDUs' IDs, and
 * keeps it up to date from the `m.device_list_update` and
 * `m.signing_key_update` EDUs (docs/federation-design.md "Remote device
 * lists"). /keys/query answers a cached, fresh user from here.
 *
 * Two collections, no transactions: a list row per user (stream ID, stale
 * mark, cross-signing keys as JSON text) and a row per device (keys as JSON
 * text, as libs/storage asks for client JSON).
 */

export interface RemoteDeviceListRecord extends Doc {
  _id: string; // user ID
  /** The user's server (so a server's lists can be found). */
  server: string;
  /** The `stream_id` of the last /user/devices answer or m.device_list_update applied. */
  stream_id: number;
  /** Set when an update could not be applied (unknown prev_id): the next reader resynchronises. */
  stale: boolean;
  master_key: string | null;
  self_signing_key: string | null;
  updated_ts: number;
  /**
   * The token of the fetch in progress (`beginResync`), cleared by any update
   * received meanwhile: the fetch then stores its devices but leaves the list
   * stale, since its answer may predate that update.
   */
  resync: string | null;
}

export interface RemoteDeviceRecord extends Doc {
  _id: string; // user \n device
  user_id: string;
  device_id: string;
  /** The DeviceKeys JSON as the user's server gave it, or null for a device without keys. */
  keys: string | null;
  display_name: string | null;
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const SEP = '\n';

function serverOf(userId: string): string {
  const colon = userId.indexOf(':');
  return colon < 0 ? '' : userId.slice(colon + 1);
}

/** One cached device list, as /keys/query serves it. */
export interface CachedDeviceList {
  streamId: number;
  devices: Array<{ deviceId: string; keys: Json | null; displayName: string | null }>;
  masterKey: Json | null;
  selfSigningKey: Json | null;
}

/** What an m.device_list_update did to the cache. */
export type DeviceListUpdateOutcome =
  /** Applied on top of the cached list. */
  | 'applied'
  /** Already applied (a repeated EDU): nothing changed. */
  | 'duplicate'
  /** The user's list is not cached: nothing to update (the next /keys/query fetches it). */
  | 'not-cached'
  /** A prev_id is unknown: the list is marked stale and is fetched again when next needed. */
  | 'stale';

export class RemoteDeviceListStore {
  private constructor(
    readonly lists: Collection<RemoteDeviceListRecord>,
    readonly devices: Collection<RemoteDeviceRecord>,
  ) {}

  static async open(store: DocumentStore): Promise<RemoteDeviceListStore> {
    return new RemoteDeviceListStore(
      await store.collection<RemoteDeviceListRecord>({ name: 'e2e_remote_device_lists', indexes: [{ fields: ['server'] }] }),
      await store.collection<RemoteDeviceRecord>({ name: 'e2e_remote_devices', indexes: [{ fields: ['user_id'] }] }),
    );
  }

  /** The cached list of a user, or null when none is cached or it is stale. */
  async get(userId: string): Promise<CachedDeviceList | null> {
    const list = await this.lists.get(userId);
    if (!list || list.stale) return null;
    const rows = await this.devices.find({ user_id: userId }, { sort: { device_id: 1 } });
    return {
      streamId: list.stream_id,
      devices: rows.map((r) => ({ deviceId: r.device_id, keys: r.keys === null ? null : (JSON.parse(r.keys) as Json), displayName: r.display_name })),
      masterKey: list.master_key === null ? null : (JSON.parse(list.master_key) as Json),
      selfSigningKey: list.self_signing_key === null ? null : (JSON.parse(list.self_signing_key) as Json),
    };
  }

  /**
   * Called before fetching a user's list: marks it stale (a placeholder row
   * for a user not cached yet) with a fresh resync token, so an update that
   * arrives while the fetch is under way is known to `replace`.
   */
  async beginResync(userId: string): Promise<string> {
    const token = randomUUID();
    for (let attempt = 0; attempt < 3; attempt++) {
      if (await this.lists.update(userId, { stale: true, resync: token })) return token;
      const placeholder: RemoteDeviceListRecord = { _id: userId, server: serverOf(userId), stream_id: 0, stale: true, master_key: null, self_signing_key: null, updated_ts: Date.now(), resync: token };
      if (await this.lists.insert(placeholder)) return token;
    }
    return token;
  }

  /**
   * Stores a `/user/devices/{userId}` answer (user_devices.yaml), already
   * checked by `parseUserDevicesResponse`, fetched after `beginResync` gave
   * `token`. The devices are replaced in one deleteMany + insertMany (one
   * transaction on SQLite); the list becomes fresh only if no update arrived
   * since `beginResync` (else it stays stale and the next reader fetches
   * again). Answers whether the list is now fresh.
   */
  async replace(userId: string, answer: ParsedUserDevices, token: string): Promise<boolean> {
    await this.devices.deleteMany({ user_id: userId });
    await this.devices.insertMany(
      answer.devices.map((device) => ({
        _id: userId + SEP + device.device_id,
        user_id: userId,
        device_id: device.device_id,
        keys: device.keys === null ? null : JSON.stringify(device.keys),
        display_name: device.device_display_name ?? null,
      })),
    );
    return this.lists.update(
      userId,
      {
        stream_id: answer.stream_id,
        stale: false,
        master_key: answer.master_key === null ? null : JSON.stringify(answer.master_key),
        self_signing_key: answer.self_signing_key === null ? null : JSON.stringify(answer.self_signing_key),
        updated_ts: Date.now(),
        resync: null,
      },
      { resync: token },
    );
  }

  /**
   * Applies an m.device_list_update EDU (definitions/event-schemas/m.device_list_update):
   * "If a server receives an EDU which refers to a prev_id it does not
   * recognise, it must resynchronise its list". Only the last stream ID is
   * kept, so an update applies when its prev_ids are empty or all equal to
   * it; an update at or below it is a repeat.
   */
  async applyUpdate(update: ParsedDeviceListUpdate): Promise<DeviceListUpdateOutcome> {
    const list = await this.lists.get(update.user_id);
    if (!list) return 'not-cached';
    if (list.stale) {
      // A fetch under way may have been answered before this update: it must not make the list fresh.
      if (list.resync !== null) await this.lists.update(update.user_id, { resync: null });
      return 'stale';
    }
    if (update.stream_id <= list.stream_id) return 'duplicate';
    if (!update.prev_id.every((p) => p === list.stream_id)) {
      await this.markStale(update.user_id);
      return 'stale';
    }
    const id = update.user_id + SEP + update.device_id;
    if (update.deleted) await this.devices.delete(id);
    else {
      await this.devices.put({
        _id: id,
        user_id: update.user_id,
        device_id: update.device_id,
        keys: update.keys === null ? null : JSON.stringify(update.keys),
        display_name: update.device_display_name,
      });
    }
    // Conditional on the stream ID read above: a concurrent update of the same user makes this one lose, and the list goes stale.
    if (!(await this.lists.update(update.user_id, { stream_id: update.stream_id, updated_ts: Date.now() }, { stream_id: list.stream_id, stale: false }))) {
      await this.markStale(update.user_id);
      return 'stale';
    }
    return 'applied';
  }

  /**
   * Applies an m.signing_key_update EDU (definitions/event-schemas/m.signing_key_update):
   * the given master and/or self-signing key replace the cached ones. Nothing
   * is cached for an unknown user (the next /keys/query fetches everything).
   */
  async applySigningKeyUpdate(userId: string, masterKey: Json | null, selfSigningKey: Json | null): Promise<boolean> {
    // resync cleared: a fetch under way may predate these keys (see `replace`).
    const set: Partial<RemoteDeviceListRecord> = { updated_ts: Date.now(), resync: null };
    if (masterKey) set.master_key = JSON.stringify(masterKey);
    if (selfSigningKey) set.self_signing_key = JSON.stringify(selfSigningKey);
    return this.lists.update(userId, set);
  }

  /** The next reader fetches the list again. */
  async markStale(userId: string): Promise<void> {
    await this.lists.update(userId, { stale: true, resync: null });
  }

  /**
   * Drops a user's list (no local user shares a room with them any more: no
   * EDUs would keep it current). One delete when nothing is cached; device
   * rows left by a `replace` cut short before its list row are removed by
   * the next `replace`.
   */
  async forget(userId: string): Promise<void> {
    if (await this.lists.delete(userId)) await this.devices.deleteMany({ user_id: userId });
  }
}

// ---- checking what remote servers send (they are not trusted to send the right shapes) ----

export interface ParsedUserDevices {
  user_id: string;
  stream_id: number;
  devices: Array<{ device_id: string; keys: Json | null; device_display_name?: string }>;
  master_key: Json | null;
  self_signing_key: Json | null;
}

/**
 * A `/user/devices/{userId}` answer for `userId`, or null when its shape is
 * wrong. Devices whose keys name another user or device are dropped (a
 * server may only speak for its own users' devices).
 */
export function parseUserDevicesResponse(userId: string, body: unknown): ParsedUserDevices | null {
  if (!isObject(body) || body.user_id !== userId || typeof body.stream_id !== 'number' || !Number.isSafeInteger(body.stream_id) || !Array.isArray(body.devices)) return null;
  const devices: ParsedUserDevices['devices'] = [];
  for (const device of body.devices as unknown[]) {
    if (!isObject(device) || typeof device.device_id !== 'string') continue;
    const keys = isObject(device.keys) && device.keys.user_id === userId && device.keys.device_id === device.device_id ? device.keys : null;
    const entry: ParsedUserDevices['devices'][number] = { device_id: device.device_id, keys };
    if (typeof device.device_display_name === 'string') entry.device_display_name = device.device_display_name;
    devices.push(entry);
  }
  return {
    user_id: userId,
    stream_id: body.stream_id,
    devices,
    master_key: crossSigningKeyOf(userId, body.master_key, 'master'),
    self_signing_key: crossSigningKeyOf(userId, body.self_signing_key, 'self_signing'),
  };
}

/** A CrossSigningKey of `userId` with the usage, else null. */
export function crossSigningKeyOf(userId: string, value: unknown, usage: string): Json | null {
  if (!isObject(value) || value.user_id !== userId || !Array.isArray(value.usage) || !value.usage.includes(usage) || !isObject(value.keys)) return null;
  return value;
}

export interface ParsedDeviceListUpdate {
  user_id: string;
  device_id: string;
  stream_id: number;
  prev_id: number[];
  deleted: boolean;
  keys: Json | null;
  device_display_name: string | null;
}

/**
 * The content of an m.device_list_update EDU from `origin`, or null when it
 * is malformed or about a user of another server.
 */
export function parseDeviceListUpdate(origin: string, content: unknown): ParsedDeviceListUpdate | null {
  if (!isObject(content)) return null;
  const { user_id: userId, device_id: deviceId, stream_id: streamId } = content;
  if (typeof userId !== 'string' || serverOf(userId) !== origin || typeof deviceId !== 'string' || typeof streamId !== 'number' || !Number.isSafeInteger(streamId)) return null;
  const prev = content.prev_id;
  if (prev !== undefined && (!Array.isArray(prev) || !prev.every((p) => typeof p === 'number'))) return null;
  const keys = isObject(content.keys) && content.keys.user_id === userId && content.keys.device_id === deviceId ? content.keys : null;
  return {
    user_id: userId,
    device_id: deviceId,
    stream_id: streamId,
    prev_id: (prev as number[] | undefined) ?? [],
    deleted: content.deleted === true,
    keys,
    device_display_name: typeof content.device_display_name === 'string' ? content.device_display_name : null,
  };
}
