import { FederationHttpError, FederationUnreachableError, type FederationClient } from '@atrium/federation-client';
import type { JsonObject } from '@atrium/matrix';
import type { RoomStore } from '@atrium/rooms';
import { crossSigningKeyOf, parseUserDevicesResponse, type CachedDeviceList, type RemoteDeviceListStore } from './remote-device-lists';

/**
 * The remote half of POST /keys/query and /keys/claim
 * (modules/end_to_end_encryption.md; keys.yaml `timeout` and `failures`;
 * server-server-api "End-to-End Encryption" and "Device Management"):
 * every remote server is asked in parallel, within the request's `timeout`,
 * and a server that cannot be reached, or answers with an error or
 * nonsense, is named in `failures` while the others' answers are kept.
 *
 * /keys/query reads remote device lists from the cache
 * (RemoteDeviceListStore) when it holds a fresh list. A user sharing a joined
 * room with this server, whose list is missing or stale, is fetched with
 * `GET /user/devices/{userId}` and cached: the EDUs that keep the cache
 * current arrive for exactly those users ("Servers must send
 * m.device_list_update EDUs to all the servers who share a room with a given
 * local user"). Anyone else is asked with `POST /user/keys/query`, one
 * request per server, and not cached, since no EDU would tell us it changed.
 */

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function serverOf(userId: string): string {
  const colon = userId.indexOf(':');
  return colon < 0 ? '' : userId.slice(colon + 1);
}

export interface RemoteKeysOptions {
  client: FederationClient;
}

/** What E2eeService hands over (kept narrow so this file does not need the whole service). */
export interface RemoteKeysContext {
  readonly rooms: Pick<RoomStore, 'roomsOfUser'>;
  readonly remoteDeviceLists: RemoteDeviceListStore;
}

export interface RemoteQueryAnswer {
  device_keys: Record<string, Record<string, Json>>;
  master_keys: Record<string, Json>;
  self_signing_keys: Record<string, Json>;
  failures: Record<string, Json>;
}

export interface RemoteClaimAnswer {
  one_time_keys: Record<string, Record<string, Json>>;
  failures: Record<string, Json>;
}

/** A remote answer whose shape is wrong: the server is listed in `failures`. */
class BadAnswerError extends Error {}

/** The `failures` entry of a server (keys.yaml leaves its content open; Synapse's form: the HTTP status and a message). */
export function failureOf(server: string, err: unknown): Json {
  if (err instanceof FederationHttpError) {
    const out: Json = { status: err.status, error: err.message };
    if (err.errcode) out.errcode = err.errcode;
    return out;
  }
  if (err instanceof FederationUnreachableError) return { status: 503, error: `${server} could not be reached (${err.reason}): ${err.message}` };
  if (err instanceof BadAnswerError) return { status: 502, error: `${server} sent an invalid answer: ${err.message}` };
  return { status: 503, error: err instanceof Error ? err.message : String(err) };
}

function groupByServer<T>(users: ReadonlyMap<string, T>): Map<string, Map<string, T>> {
  const out = new Map<string, Map<string, T>>();
  for (const [user, value] of users) {
    const server = serverOf(user);
    let group = out.get(server);
    if (!group) out.set(server, (group = new Map()));
    group.set(user, value);
  }
  return out;
}

export class RemoteKeys {
  constructor(
    private readonly context: RemoteKeysContext,
    private readonly options: RemoteKeysOptions,
  ) {}

  private remaining(deadline: number): number {
    return Math.max(1, deadline - Date.now());
  }

  /** Whether a room this server is in holds the user as joined (then their server sends us their device list updates). */
  private async tracked(userId: string): Promise<boolean> {
    return (await this.context.rooms.roomsOfUser(userId, ['join'])).length > 0;
  }

  async query(users: ReadonlyMap<string, readonly string[]>, timeoutMs: number): Promise<RemoteQueryAnswer> {
    const out: RemoteQueryAnswer = { device_keys: {}, master_keys: {}, self_signing_keys: {}, failures: {} };
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      [...groupByServer(users)].map(async ([server, serverUsers]) => {
        try {
          await this.queryServer(server, serverUsers, deadline, out);
        } catch (err) {
          out.failures[server] = failureOf(server, err);
        }
      }),
    );
    return out;
  }

  private async queryServer(server: string, users: ReadonlyMap<string, readonly string[]>, deadline: number, out: RemoteQueryAnswer): Promise<void> {
    const lists = this.context.remoteDeviceLists;
    const resync: string[] = [];
    const direct = new Map<string, readonly string[]>();
    for (const [user, devices] of users) {
      if (!(await this.tracked(user))) {
        // No shared room: no EDU keeps a cached list current, so it is not trusted (and dropped if one is left from a shared past).
        await lists.forget(user);
        direct.set(user, devices);
        continue;
      }
      const cached = await lists.get(user);
      if (cached) serveList(out, user, devices, cached);
      else resync.push(user);
    }
    const work: Array<Promise<void>> = resync.map(async (user) => {
      const token = await lists.beginResync(user);
      const body = await this.options.client.request<unknown>({
        destination: server,
        method: 'GET',
        path: `/_matrix/federation/v1/user/devices/${encodeURIComponent(user)}`,
        timeoutMs: this.remaining(deadline),
      });
      const parsed = parseUserDevicesResponse(user, body);
      if (!parsed) throw new BadAnswerError(`/user/devices/${user}`);
      await lists.replace(user, parsed, token);
      serveList(out, user, users.get(user) ?? [], {
        streamId: parsed.stream_id,
        devices: parsed.devices.map((d) => ({ deviceId: d.device_id, keys: d.keys, displayName: d.device_display_name ?? null })),
        masterKey: parsed.master_key,
        selfSigningKey: parsed.self_signing_key,
      });
    });
    if (direct.size > 0) {
      work.push(
        (async () => {
          const body = await this.options.client.request<unknown>({
            destination: server,
            method: 'POST',
            path: '/_matrix/federation/v1/user/keys/query',
            body: { device_keys: Object.fromEntries([...direct].map(([u, d]) => [u, [...d]])) } as JsonObject,
            timeoutMs: this.remaining(deadline),
          });
          mergeQueryAnswer(out, direct, body);
        })(),
      );
    }
    // Every request runs to its end (a failed one does not cancel the others); the first error names the server in `failures`.
    const results = await Promise.allSettled(work);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  async claim(users: ReadonlyMap<string, Readonly<Record<string, string>>>, timeoutMs: number): Promise<RemoteClaimAnswer> {
    const out: RemoteClaimAnswer = { one_time_keys: {}, failures: {} };
    const deadline = Date.now() + timeoutMs;
    await Promise.all(
      [...groupByServer(users)].map(async ([server, serverUsers]) => {
        try {
          const body = await this.options.client.request<unknown>({
            destination: server,
            method: 'POST',
            path: '/_matrix/federation/v1/user/keys/claim',
            body: { one_time_keys: Object.fromEntries([...serverUsers].map(([u, d]) => [u, { ...d }])) } as JsonObject,
            timeoutMs: this.remaining(deadline),
          });
          mergeClaimAnswer(out, serverUsers, body);
        } catch (err) {
          out.failures[server] = failureOf(server, err);
        }
      }),
    );
    return out;
  }
}

/** A cached (or just fetched) list as /keys/query shows it: devices with keys, the display name in `unsigned`. */
function serveList(out: RemoteQueryAnswer, user: string, wanted: readonly string[], list: CachedDeviceList): void {
  const devices: Record<string, Json> = {};
  for (const device of list.devices) {
    if (!device.keys || Object.keys(device.keys).length === 0) continue;
    if (wanted.length > 0 && !wanted.includes(device.deviceId)) continue;
    const keys: Json = { ...device.keys };
    const unsigned: Json = isObject(keys.unsigned) ? { ...keys.unsigned } : {};
    if (device.displayName !== null) unsigned.device_display_name = device.displayName;
    keys.unsigned = unsigned;
    devices[device.deviceId] = keys;
  }
  out.device_keys[user] = devices;
  if (list.masterKey) out.master_keys[user] = list.masterKey;
  if (list.selfSigningKey) out.self_signing_keys[user] = list.selfSigningKey;
}

/** A /user/keys/query answer (user_keys.yaml): only the users asked for, only keys that name their own user and device. */
function mergeQueryAnswer(out: RemoteQueryAnswer, asked: ReadonlyMap<string, readonly string[]>, body: unknown): void {
  if (!isObject(body) || !isObject(body.device_keys)) throw new BadAnswerError('/user/keys/query without device_keys');
  const masterKeys = isObject(body.master_keys) ? body.master_keys : {};
  const selfSigningKeys = isObject(body.self_signing_keys) ? body.self_signing_keys : {};
  for (const [user, wanted] of asked) {
    const devices = body.device_keys[user];
    if (isObject(devices)) {
      const kept: Record<string, Json> = {};
      for (const [deviceId, keys] of Object.entries(devices)) {
        if (!isObject(keys) || keys.user_id !== user || keys.device_id !== deviceId) continue;
        if (wanted.length > 0 && !wanted.includes(deviceId)) continue;
        kept[deviceId] = keys;
      }
      out.device_keys[user] = kept;
    }
    const master = crossSigningKeyOf(user, masterKeys[user], 'master');
    if (master) out.master_keys[user] = master;
    const selfSigning = crossSigningKeyOf(user, selfSigningKeys[user], 'self_signing');
    if (selfSigning) out.self_signing_keys[user] = selfSigning;
  }
}

/** A /user/keys/claim answer: only the users and devices asked for, `<algorithm>:<key_id>` to a key string or object. */
function mergeClaimAnswer(out: RemoteClaimAnswer, asked: ReadonlyMap<string, Readonly<Record<string, string>>>, body: unknown): void {
  if (!isObject(body) || !isObject(body.one_time_keys)) throw new BadAnswerError('/user/keys/claim without one_time_keys');
  for (const [user, devices] of asked) {
    const answered = body.one_time_keys[user];
    if (!isObject(answered)) continue;
    for (const [deviceId, algorithm] of Object.entries(devices)) {
      const keys = answered[deviceId];
      if (!isObject(keys)) continue;
      for (const [keyId, key] of Object.entries(keys)) {
        if (!keyId.startsWith(`${algorithm}:`) || (typeof key !== 'string' && !isObject(key))) continue;
        ((out.one_time_keys[user] ??= {})[deviceId] ??= {})[keyId] = key;
      }
    }
  }
}
