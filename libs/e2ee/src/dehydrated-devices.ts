/**
 * Dehydrated devices, MSC3814 ("Dehydrated Devices with SSSS") as Element
 * uses it: a user keeps at most one device whose private keys the client
 * stored, encrypted, in `device_data`; other devices send it room keys like
 * to any device; a later login fetches the data and reads the device's
 * to-device messages with `POST /dehydrated_device/{device_id}/events`.
 * This module stores the device's data (`e2e_dehydrated_devices`, one
 * document per user) and checks the PUT body; the device itself is an
 * account device, and its keys are uploaded as with /keys/upload.
 */
import type { Collection, Doc, DocumentStore } from '@atrium/storage';

type Json = Record<string, unknown>;

interface DehydratedDeviceRecord extends Doc {
  _id: string; // user ID
  device_id: string;
  /** The client's `device_data` object, as JSON text (opaque to the server). */
  device_data: string;
}

export interface DehydratedDevice {
  device_id: string;
  device_data: Json;
}

/** A PUT /dehydrated_device body, checked; `keys` is what goes to /keys/upload for the device. */
export interface DehydratedDeviceUpload {
  deviceId: string;
  deviceData: Json;
  displayName: string | null;
  keys: Json;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks a PUT body: `device_id` and `device_data` (an object with an
 * `algorithm` string) are required, and `device_keys` too ("the dehydrated
 * device, the public device keys, and one-time keys are all uploaded in the
 * same request … to prevent the creation of dehydrated devices which do not
 * support end-to-end encryption"). Answers a message for 400 M_INVALID_PARAM
 * (or M_MISSING_PARAM when `missing` is set), or the parsed upload.
 */
export function parseDehydratedDeviceUpload(body: Json): DehydratedDeviceUpload | { error: string; missing?: string } {
  for (const field of ['device_id', 'device_data', 'device_keys']) if (body[field] === undefined) return { error: `${field} is required`, missing: field };
  const deviceId = body['device_id'];
  if (typeof deviceId !== 'string' || deviceId === '' || deviceId.length > 255) return { error: 'device_id must be a non-empty string' };
  const data = body['device_data'];
  if (!isObject(data) || typeof data['algorithm'] !== 'string') return { error: 'device_data must be an object with an algorithm' };
  const name = body['initial_device_display_name'];
  if (name !== undefined && typeof name !== 'string') return { error: 'initial_device_display_name must be a string' };
  const keys: Json = { device_keys: body['device_keys'] };
  if (body['one_time_keys'] !== undefined) keys['one_time_keys'] = body['one_time_keys'];
  if (body['fallback_keys'] !== undefined) keys['fallback_keys'] = body['fallback_keys'];
  return { deviceId, deviceData: data, displayName: name ?? null, keys };
}

export class DehydratedDeviceStore {
  private constructor(private readonly devices: Collection<DehydratedDeviceRecord>) {}

  static async open(store: DocumentStore): Promise<DehydratedDeviceStore> {
    return new DehydratedDeviceStore(await store.collection<DehydratedDeviceRecord>({ name: 'e2e_dehydrated_devices' }));
  }

  async get(userId: string): Promise<DehydratedDevice | null> {
    const record = await this.devices.get(userId);
    return record ? { device_id: record.device_id, device_data: JSON.parse(record.device_data) as Json } : null;
  }

  /** Stores the user's dehydrated device; answers the one it replaces, if any. */
  async put(userId: string, deviceId: string, deviceData: Json): Promise<DehydratedDevice | null> {
    const previous = await this.get(userId);
    const record = { _id: userId, device_id: deviceId, device_data: JSON.stringify(deviceData) };
    if (!(await this.devices.insert(record))) await this.devices.update(userId, { device_id: deviceId, device_data: record.device_data });
    return previous;
  }

  /** Forgets the user's dehydrated device; answers it, or null when there was none. */
  async delete(userId: string): Promise<DehydratedDevice | null> {
    const previous = await this.get(userId);
    if (previous) await this.devices.delete(userId);
    return previous;
  }
}
