import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import type { StreamAllocator } from '@atrium/rooms';

/**
 * Storage of end-to-end encryption keys (client-server-api "End-to-End
 * Encryption", modules/end_to_end_encryption.md; data/api/client-server/
 * keys.yaml, cross_signing.yaml, key_backup.yaml). Owned by key-server
 * (ARCHITECTURE.md).
 *
 * Client JSON (device keys, one-time keys, cross-signing keys, backup
 * session data, auth_data) is stored as strings with the fields queries need
 * beside it (libs/storage port rules). No write needs a transaction: each is
 * an idempotent put of a whole key, an insert, or a conditional delete/update.
 */

export const DEVICE_LISTS_STREAM = 'device_lists';

export interface DeviceKeysRecord extends Doc {
  _id: string; // user \n device
  user_id: string;
  device_id: string;
  json: string;
}

export interface OneTimeKeyRecord extends Doc {
  _id: string; // user \n device \n algorithm:key_id
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string; // algorithm:id as uploaded
  json: string;
  /**
   * Which /keys/upload call brought the key (the `e2e_otk_upload` sequence):
   * keys "are given out in the order that they were uploaded" (keys.yaml
   * claimKeys, v1.13), keys of one call being equivalent. Absent on keys
   * stored before the field; they sort first, as the oldest.
   */
  upload_seq?: number;
}

/** The sequence numbering /keys/upload calls (OneTimeKeyRecord.upload_seq). */
const OTK_UPLOAD_SEQUENCE = 'e2e_otk_upload';

export interface FallbackKeyRecord extends Doc {
  _id: string; // user \n device \n algorithm
  user_id: string;
  device_id: string;
  algorithm: string;
  key_id: string;
  json: string;
  used: boolean;
}

export type CrossSigningUsage = 'master' | 'self_signing' | 'user_signing';

export interface CrossSigningKeyRecord extends Doc {
  _id: string; // user \n usage
  user_id: string;
  usage: string;
  /** The public key (the unpadded base64 part of its `ed25519:` key ID). */
  public_key: string;
  json: string;
}

/** A signature uploaded through /keys/signatures/upload, merged into the signed key when read. */
export interface KeySignatureRecord extends Doc {
  _id: string; // target user \n target key (device ID or public key) \n signer user \n signer key ID
  target_user: string;
  target_key: string;
  signer_user: string;
  signer_key_id: string;
  signature: string;
}

/** The latest position at which a user's device list (device keys, devices, cross-signing keys) changed. */
export interface DeviceListChangeRecord extends Doc {
  _id: string; // user ID
  stream: number;
}

export interface BackupVersionRecord extends Doc {
  _id: string; // user \n version
  user_id: string;
  version: string;
  /** Numeric version, for finding the latest one. */
  version_num: number;
  algorithm: string;
  auth_data: string;
  etag: number;
  deleted: boolean;
}

export interface BackupKeyRecord extends Doc {
  _id: string; // user \n version \n room \n session
  user_id: string;
  version: string;
  room_id: string;
  session_id: string;
  first_message_index: number;
  forwarded_count: number;
  is_verified: boolean;
  json: string;
}

export type Json = Record<string, unknown>;

/** What a writer announces on `sync.wake` (docs/client-server-design.md "Waking sync"). */
export type WakeUsers = (position: number, userIds: string[]) => Promise<void>;

const SEP = '\n';
const id = (...parts: string[]): string => parts.join(SEP);

export class E2eeStore {
  private constructor(
    private readonly store: DocumentStore,
    private readonly positions: Pick<StreamAllocator, 'withPosition' | 'safePosition'>,
    readonly deviceKeys: Collection<DeviceKeysRecord>,
    readonly oneTimeKeys: Collection<OneTimeKeyRecord>,
    readonly fallbackKeys: Collection<FallbackKeyRecord>,
    readonly crossSigning: Collection<CrossSigningKeyRecord>,
    readonly signatures: Collection<KeySignatureRecord>,
    readonly changes: Collection<DeviceListChangeRecord>,
    readonly backupVersions: Collection<BackupVersionRecord>,
    readonly backupKeys: Collection<BackupKeyRecord>,
  ) {}

  static async open(store: DocumentStore, positions: Pick<StreamAllocator, 'withPosition' | 'safePosition'>): Promise<E2eeStore> {
    return new E2eeStore(
      store,
      positions,
      await store.collection<DeviceKeysRecord>({ name: 'e2e_device_keys', indexes: [{ fields: ['user_id'] }] }),
      await store.collection<OneTimeKeyRecord>({ name: 'e2e_one_time_keys', indexes: [{ fields: ['user_id', 'device_id', 'algorithm'] }] }),
      await store.collection<FallbackKeyRecord>({ name: 'e2e_fallback_keys', indexes: [{ fields: ['user_id', 'device_id'] }] }),
      await store.collection<CrossSigningKeyRecord>({ name: 'e2e_cross_signing_keys', indexes: [{ fields: ['user_id'] }] }),
      await store.collection<KeySignatureRecord>({ name: 'e2e_key_signatures', indexes: [{ fields: ['target_user'] }] }),
      await store.collection<DeviceListChangeRecord>({ name: 'e2e_device_list_changes', indexes: [{ fields: ['stream'] }] }),
      await store.collection<BackupVersionRecord>({ name: 'e2e_backup_versions', indexes: [{ fields: ['user_id', 'version_num'] }] }),
      await store.collection<BackupKeyRecord>({ name: 'e2e_backup_keys', indexes: [{ fields: ['user_id', 'version', 'room_id'] }] }),
    );
  }

  // ---- device list stream ----

  safePosition(): Promise<number> {
    return this.positions.safePosition(DEVICE_LISTS_STREAM);
  }

  /**
   * Records that `userId`'s device list changed, at a new position of the
   * `device_lists` stream. One record per user holding the latest position:
   * a reader of `(from, to]` that sees a later position leaves the user to
   * its next range, which then includes it, so nothing is missed.
   */
  async markChanged(userId: string): Promise<number> {
    return this.positions.withPosition(DEVICE_LISTS_STREAM, async (position) => {
      // Keep the higher position when two writers race (conditional update, else insert).
      if (!(await this.changes.update(userId, { stream: position }, { stream: { $lt: position } }))) {
        await this.changes.insert({ _id: userId, stream: position });
      }
      return position;
    });
  }

  /**
   * Users whose device list changed in `(from, to]`, or null when more than
   * `limit` did (the caller then asks about the users it cares about with
   * `changedAmong`, so a long gap between syncs loses nothing).
   */
  async changedBetween(from: number, to: number, limit = 1000): Promise<Set<string> | null> {
    if (to <= from) return new Set();
    const rows = await this.changes.find({ stream: { $gt: from, $lte: to } }, { limit: limit + 1 });
    if (rows.length > limit) return null;
    return new Set(rows.map((r) => r._id));
  }

  /** Those of `userIds` whose device list changed in `(from, to]`. */
  async changedAmong(userIds: readonly string[], from: number, to: number): Promise<Set<string>> {
    if (to <= from || userIds.length === 0) return new Set();
    const rows = await this.changes.getMany([...userIds]);
    return new Set(rows.filter((r) => r.stream > from && r.stream <= to).map((r) => r._id));
  }

  // ---- device keys ----

  getDeviceKeys(userId: string, deviceId: string): Promise<DeviceKeysRecord | null> {
    return this.deviceKeys.get(id(userId, deviceId));
  }

  devicesKeysOf(userId: string): Promise<DeviceKeysRecord[]> {
    return this.deviceKeys.find({ user_id: userId }, { sort: { device_id: 1 } });
  }

  async putDeviceKeys(userId: string, deviceId: string, keys: Json): Promise<void> {
    await this.deviceKeys.put({ _id: id(userId, deviceId), user_id: userId, device_id: deviceId, json: JSON.stringify(keys) });
  }

  /** Removes everything of a deleted device (client-server-api "Deleting devices": its keys go with it). */
  async deleteDevice(userId: string, deviceId: string): Promise<void> {
    await this.deviceKeys.delete(id(userId, deviceId));
    await this.oneTimeKeys.deleteMany({ user_id: userId, device_id: deviceId });
    await this.fallbackKeys.deleteMany({ user_id: userId, device_id: deviceId });
  }

  // ---- one-time and fallback keys ----

  getOneTimeKey(userId: string, deviceId: string, keyId: string): Promise<OneTimeKeyRecord | null> {
    return this.oneTimeKeys.get(id(userId, deviceId, keyId));
  }

  insertOneTimeKey(userId: string, deviceId: string, keyId: string, key: unknown): Promise<void> {
    return this.insertOneTimeKeys(userId, deviceId, [[keyId, key]]);
  }

  /** The new one-time keys of one /keys/upload call, all with the call's place in the upload order. */
  async insertOneTimeKeys(userId: string, deviceId: string, keys: ReadonlyArray<readonly [string, unknown]>): Promise<void> {
    if (keys.length === 0) return;
    const seq = await this.store.nextSequence(OTK_UPLOAD_SEQUENCE);
    for (const [keyId, key] of keys) {
      const algorithm = keyId.split(':')[0] ?? '';
      await this.oneTimeKeys.insert({ _id: id(userId, deviceId, keyId), user_id: userId, device_id: deviceId, algorithm, key_id: keyId, json: JSON.stringify(key), upload_seq: seq });
    }
  }

  /**
   * `one_time_key_counts`: unclaimed keys by algorithm. `signed_curve25519` is
   * always present (0 when none are left), as Synapse does: clients decide to
   * upload more keys from it, and some treat an absent count as unknown.
   */
  async oneTimeKeyCounts(userId: string, deviceId: string): Promise<Record<string, number>> {
    const counts: Record<string, number> = { signed_curve25519: 0 };
    const rows = await this.oneTimeKeys.find({ user_id: userId, device_id: deviceId });
    for (const row of rows) counts[row.algorithm] = (counts[row.algorithm] ?? 0) + 1;
    return counts;
  }

  /**
   * Claims one one-time key of the algorithm: the oldest upload's is deleted,
   * and the delete is the claim (two claimers racing for the same key: one
   * delete succeeds, the other tries the next key). Bounded attempts.
   */
  async claimOneTimeKey(userId: string, deviceId: string, algorithm: string): Promise<{ keyId: string; key: unknown } | null> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const candidates = await this.oneTimeKeys.find({ user_id: userId, device_id: deviceId, algorithm }, { sort: { upload_seq: 1 }, limit: 5 });
      if (candidates.length === 0) return null;
      for (const row of candidates) {
        if (await this.oneTimeKeys.delete(row._id)) return { keyId: row.key_id, key: JSON.parse(row.json) as unknown };
      }
    }
    return null;
  }

  /**
   * Claims one one-time key for each of many devices of one user with one
   * read of the user's keys per algorithm, then a delete by ID per device
   * (the delete is the claim, as in `claimOneTimeKey`; a device whose
   * candidates were all taken meanwhile is tried again on its own). For a
   * claim naming many devices: one find per device costs a collection scan
   * each on FerretDB (see BENCHMARKS.md).
   */
  async claimOneTimeKeysOfDevices(userId: string, wanted: ReadonlyMap<string, string>): Promise<Map<string, { keyId: string; key: unknown }>> {
    const out = new Map<string, { keyId: string; key: unknown }>();
    for (const algorithm of new Set(wanted.values())) {
      const byDevice = new Map<string, OneTimeKeyRecord[]>();
      for (const row of await this.oneTimeKeys.find({ user_id: userId, algorithm }, { sort: { upload_seq: 1 } })) {
        if (wanted.get(row.device_id) !== algorithm) continue;
        const list = byDevice.get(row.device_id);
        if (list) list.push(row);
        else byDevice.set(row.device_id, [row]);
      }
      for (const [deviceId, rows] of byDevice) {
        for (const row of rows) {
          if (await this.oneTimeKeys.delete(row._id)) {
            out.set(deviceId, { keyId: row.key_id, key: JSON.parse(row.json) as unknown });
            break;
          }
        }
        if (!out.has(deviceId)) {
          const retry = await this.claimOneTimeKey(userId, deviceId, algorithm);
          if (retry) out.set(deviceId, retry);
        }
      }
    }
    return out;
  }

  getFallbackKey(userId: string, deviceId: string, algorithm: string): Promise<FallbackKeyRecord | null> {
    return this.fallbackKeys.get(id(userId, deviceId, algorithm));
  }

  async putFallbackKey(userId: string, deviceId: string, keyId: string, key: unknown): Promise<void> {
    const algorithm = keyId.split(':')[0] ?? '';
    await this.fallbackKeys.put({ _id: id(userId, deviceId, algorithm), user_id: userId, device_id: deviceId, algorithm, key_id: keyId, json: JSON.stringify(key), used: false });
  }

  /** A fallback key is given out as often as needed and marked used ("Fallback keys"). */
  async claimFallbackKey(userId: string, deviceId: string, algorithm: string): Promise<{ keyId: string; key: unknown } | null> {
    const row = await this.getFallbackKey(userId, deviceId, algorithm);
    if (!row) return null;
    if (!row.used) await this.fallbackKeys.update(row._id, { used: true }, { key_id: row.key_id });
    return { keyId: row.key_id, key: JSON.parse(row.json) as unknown };
  }

  /** `device_unused_fallback_key_types`. */
  async unusedFallbackKeyTypes(userId: string, deviceId: string): Promise<string[]> {
    const rows = await this.fallbackKeys.find({ user_id: userId, device_id: deviceId });
    return rows.filter((r) => !r.used).map((r) => r.algorithm).sort();
  }

  // ---- cross-signing ----

  async crossSigningKeys(userId: string): Promise<Map<string, CrossSigningKeyRecord>> {
    const rows = await this.crossSigning.find({ user_id: userId });
    return new Map(rows.map((r) => [r.usage, r]));
  }

  async putCrossSigningKey(userId: string, usage: CrossSigningUsage, publicKey: string, key: Json): Promise<void> {
    await this.crossSigning.put({ _id: id(userId, usage), user_id: userId, usage, public_key: publicKey, json: JSON.stringify(key) });
  }

  async addSignature(targetUser: string, targetKey: string, signerUser: string, signerKeyId: string, signature: string): Promise<void> {
    await this.signatures.put({ _id: id(targetUser, targetKey, signerUser, signerKeyId), target_user: targetUser, target_key: targetKey, signer_user: signerUser, signer_key_id: signerKeyId, signature });
  }

  signaturesOf(targetUser: string): Promise<KeySignatureRecord[]> {
    return this.signatures.find({ target_user: targetUser });
  }

  // ---- key backup ----

  async createBackupVersion(userId: string, algorithm: string, authData: Json): Promise<string> {
    // A global counter: versions only need to be unique and increasing per user.
    const num = await this.store.nextSequence('e2e_backup_version');
    const version = String(num);
    const etag = await this.store.nextSequence('e2e_backup_etag');
    await this.backupVersions.insert({ _id: id(userId, version), user_id: userId, version, version_num: num, algorithm, auth_data: JSON.stringify(authData), etag, deleted: false });
    return version;
  }

  async currentBackupVersion(userId: string): Promise<BackupVersionRecord | null> {
    const rows = await this.backupVersions.find({ user_id: userId, deleted: false }, { sort: { version_num: -1 }, limit: 1 });
    return rows[0] ?? null;
  }

  async backupVersion(userId: string, version: string): Promise<BackupVersionRecord | null> {
    const row = await this.backupVersions.get(id(userId, version));
    return row && !row.deleted ? row : null;
  }

  async updateBackupAuthData(userId: string, version: string, authData: Json): Promise<boolean> {
    return this.backupVersions.update(id(userId, version), { auth_data: JSON.stringify(authData) }, { deleted: false });
  }

  /**
   * Deletes a version and its keys ("Deleting a backup"). A deleted version is kept as a tombstone so its
   * number is never reused. Answers false only for a version that never existed: deleting one already
   * deleted succeeds (key_backup.yaml: "If the backup was previously deleted, the call should succeed"),
   * and deletes its keys again, which finishes a deletion cut short between the two writes.
   */
  async deleteBackupVersion(userId: string, version: string): Promise<boolean> {
    const done = await this.backupVersions.update(id(userId, version), { deleted: true }, { deleted: false });
    if (!done && !(await this.backupVersions.get(id(userId, version)))) return false;
    await this.backupKeys.deleteMany({ user_id: userId, version });
    return true;
  }

  async touchBackup(userId: string, version: string): Promise<void> {
    const etag = await this.store.nextSequence('e2e_backup_etag');
    await this.backupVersions.update(id(userId, version), { etag });
  }

  backupKeysOf(userId: string, version: string, roomId?: string, sessionId?: string): Promise<BackupKeyRecord[]> {
    if (roomId !== undefined && sessionId !== undefined) return this.backupKeys.find({ _id: id(userId, version, roomId, sessionId) });
    if (roomId !== undefined) return this.backupKeys.find({ user_id: userId, version, room_id: roomId });
    return this.backupKeys.find({ user_id: userId, version });
  }

  countBackupKeys(userId: string, version: string): Promise<number> {
    return this.backupKeys.count({ user_id: userId, version });
  }

  getBackupKey(userId: string, version: string, roomId: string, sessionId: string): Promise<BackupKeyRecord | null> {
    return this.backupKeys.get(id(userId, version, roomId, sessionId));
  }

  async putBackupKey(userId: string, version: string, roomId: string, sessionId: string, data: { first_message_index: number; forwarded_count: number; is_verified: boolean }, json: Json): Promise<void> {
    await this.backupKeys.put({ _id: id(userId, version, roomId, sessionId), user_id: userId, version, room_id: roomId, session_id: sessionId, ...data, json: JSON.stringify(json) });
  }

  async deleteBackupKeys(userId: string, version: string, roomId?: string, sessionId?: string): Promise<number> {
    if (roomId !== undefined && sessionId !== undefined) return (await this.backupKeys.delete(id(userId, version, roomId, sessionId))) ? 1 : 0;
    if (roomId !== undefined) return this.backupKeys.deleteMany({ user_id: userId, version, room_id: roomId });
    return this.backupKeys.deleteMany({ user_id: userId, version });
  }
}

/**
 * "Backup algorithm" replacement rule (modules/end_to_end_encryption.md,
 * "Server-side key backups"): the new key replaces the stored one if it is
 * verified and the old is not; else, with equal `is_verified`, if its
 * `first_message_index` is lower; else, with both equal, if its
 * `forwarded_count` is lower.
 */
export function backupKeyIsBetter(
  candidate: { is_verified: boolean; first_message_index: number; forwarded_count: number },
  existing: { is_verified: boolean; first_message_index: number; forwarded_count: number },
): boolean {
  if (candidate.is_verified !== existing.is_verified) return candidate.is_verified;
  if (candidate.first_message_index !== existing.first_message_index) return candidate.first_message_index < existing.first_message_index;
  return candidate.forwarded_count < existing.forwarded_count;
}
