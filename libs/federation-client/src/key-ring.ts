/**
 * Other servers' signing keys. Spec: server-server-api "Retrieving server
 * keys", "Publishing Keys", "Querying Keys Through Another Server";
 * rooms/fragments/v5-signing-requirements.md (the 7-day cap on
 * `valid_until_ts`).
 */
import { checkSignatures, verifyKeyFromBase64, verifyServerKeys, type JsonObject, type SigningKey, type VerifiedServerKeys } from '@atrium/matrix';
import type { KeyObject } from 'node:crypto';
import type { DocumentStore, Collection } from '@atrium/storage';
import { remoteKeyId, type FederationClient, type KeyRing, type RemoteVerifyKey } from './api';

/** One row per server and key ID (docs/federation-design.md "Transport rules"). */
export interface RemoteServerKeyDoc {
  [field: string]: string | number | null | undefined;
  /** `<server_name>|<key_id>` */
  _id: string;
  server_name: string;
  key_id: string;
  /** Public key, unpadded Base64. */
  key: string;
  /** For a key in `verify_keys`: the response's `valid_until_ts`, capped at fetch time + 7 days. Null for an old key. */
  valid_until_ts: number | null;
  /** For a key in `old_verify_keys`: its `expired_ts`. Null for a current key. */
  expired_ts: number | null;
  /** The response the key came from, as JSON text, with the signatures it had (the notary serves it). */
  response: string;
  /** The response's own `valid_until_ts`, uncapped (what a notary's caller asked about). */
  response_valid_until_ts: number;
  fetched_ts: number;
}

export const REMOTE_SERVER_KEYS_COLLECTION = 'remote_server_keys';

/** "Servers MUST use the lesser of valid_until_ts and 7 days into the future" (v5 signing requirements). */
const MAX_KEY_VALIDITY_MS = 7 * 24 * 3600_000;
const KEY_FETCH_TIMEOUT_MS = 15_000;
/** How long stored rows are reused from memory before the store is read again. */
const ROWS_MEMORY_MS = 30_000;
const KEY_RESPONSE_MAX_BYTES = 1024 * 1024;

export interface TrustedNotary {
  server_name: string;
  /** Key ID → public key; without them the notary's own keys are fetched directly. */
  verify_keys?: Record<string, string>;
}

export interface StoredKeyRingOptions {
  store: DocumentStore;
  client: FederationClient;
  /** Our server name and keys: answered without any fetch. */
  serverName: string;
  signingKey: SigningKey;
  oldSigningKeys?: Record<string, { key: string; expired_ts: number }>;
  trustedKeyServers?: readonly TrustedNotary[];
  /** How long a failed fetch for a server stops new fetches for it (default 60 s). */
  negativeCacheMs?: number;
  /**
   * After a successful fetch, how long a key ID the answer did not have is
   * not fetched again (default 60 s): otherwise every request naming a made-up
   * key ID would make us fetch the origin's keys once more.
   */
  minRefetchMs?: number;
  now?: () => number;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export class StoredKeyRing implements KeyRing {
  private collection?: Promise<Collection<RemoteServerKeyDoc>>;
  /** Fetches in flight per server: concurrent asks share one. */
  private readonly inFlight = new Map<string, Promise<boolean>>();
  /** Server → time until which we do not try again after a failed fetch. */
  private readonly failedUntil = new Map<string, number>();
  /** Server → time of its last successful fetch (by this process). */
  private readonly fetchedAt = new Map<string, number>();
  private readonly rowsMemory = new Map<string, { rows: Map<string, RemoteServerKeyDoc>; readAt: number }>();
  private readonly now: () => number;
  private readonly negativeCacheMs: number;

  constructor(private readonly options: StoredKeyRingOptions) {
    this.now = options.now ?? Date.now;
    this.negativeCacheMs = options.negativeCacheMs ?? 60_000;
  }

  private keys(): Promise<Collection<RemoteServerKeyDoc>> {
    this.collection ??= this.options.store.collection<RemoteServerKeyDoc>({ name: REMOTE_SERVER_KEYS_COLLECTION, indexes: [{ fields: ['server_name'] }] });
    return this.collection;
  }

  async getVerifyKeys(requests: ReadonlyArray<{ serverName: string; keyIds: readonly string[]; atTs?: number }>): Promise<Map<string, RemoteVerifyKey>> {
    const result = new Map<string, RemoteVerifyKey>();
    const now = this.now();
    // Group by server so each server is read (and at most fetched) once.
    const byServer = new Map<string, Array<{ keyId: string; atTs: number }>>();
    for (const { serverName, keyIds, atTs } of requests) {
      const list = byServer.get(serverName) ?? [];
      for (const keyId of keyIds) list.push({ keyId, atTs: atTs ?? now });
      byServer.set(serverName, list);
    }
    await Promise.all(
      [...byServer].map(async ([serverName, wanted]) => {
        if (serverName === this.options.serverName) {
          for (const { keyId, atTs } of wanted) {
            const own = this.ownKey(keyId, atTs);
            if (own) result.set(remoteKeyId(serverName, keyId), own);
          }
          return;
        }
        let rows = await this.rowsOf(serverName);
        const missing = wanted.filter((w) => !usable(rows.get(w.keyId), w.atTs));
        if (missing.length > 0) {
          // Ask for keys valid at least until the latest time asked about, and now.
          const minimumValidUntilTs = Math.max(now, ...missing.map((m) => m.atTs));
          if (await this.fetch(serverName, missing.map((m) => m.keyId), minimumValidUntilTs)) rows = await this.rowsOf(serverName);
        }
        for (const { keyId, atTs } of wanted) {
          const row = rows.get(keyId);
          if (!usable(row, atTs)) continue;
          result.set(remoteKeyId(serverName, keyId), toVerifyKey(row!));
        }
      }),
    );
    return result;
  }

  async serverKeyResponses(serverName: string, minimumValidUntilTs: number): Promise<JsonObject[]> {
    let rows = [...(await this.rowsOf(serverName)).values()];
    if (!rows.some((r) => r.response_valid_until_ts >= minimumValidUntilTs)) {
      // A notary asks the server itself; when that fails, what is cached is
      // still served ("Notary servers can return keys for servers that are
      // offline or having issues serving their own keys by using cached responses").
      if (await this.fetch(serverName, [], minimumValidUntilTs, { directOnly: true })) rows = [...(await this.rowsOf(serverName)).values()];
    }
    const seen = new Set<string>();
    const responses: JsonObject[] = [];
    for (const row of rows.sort((a, b) => b.response_valid_until_ts - a.response_valid_until_ts)) {
      if (seen.has(row.response)) continue;
      seen.add(row.response);
      responses.push(JSON.parse(row.response) as JsonObject);
    }
    return responses;
  }

  private ownKey(keyId: string, atTs: number): RemoteVerifyKey | undefined {
    const { signingKey, oldSigningKeys, serverName } = this.options;
    if (keyId === signingKey.keyId) return { serverName, keyId, key: signingKey.publicKey };
    const old = oldSigningKeys?.[keyId];
    if (old && old.expired_ts >= atTs) return { serverName, keyId, key: old.key, validUntilTs: old.expired_ts };
    return undefined;
  }

  /**
   * The stored rows of a server, read through a short per-process memory
   * cache: every inbound request and PDU asks for keys, and a key ID's public
   * key never changes, so only new rows (another process's fetch) are seen up
   * to ROWS_MEMORY_MS late. Our own writes drop the entry at once.
   */
  private async rowsOf(serverName: string): Promise<Map<string, RemoteServerKeyDoc>> {
    const cached = this.rowsMemory.get(serverName);
    if (cached && this.now() - cached.readAt < ROWS_MEMORY_MS) return cached.rows;
    const rows = new Map((await (await this.keys()).find({ server_name: serverName })).map((r) => [r.key_id, r]));
    if (this.rowsMemory.size >= 10_000) this.rowsMemory.clear();
    this.rowsMemory.set(serverName, { rows, readAt: this.now() });
    return rows;
  }

  /** Fetches and stores keys of `serverName`; true if something was stored. Coalesced per server, remembered when it fails. */
  private fetch(serverName: string, keyIds: readonly string[], minimumValidUntilTs: number, opts: { directOnly?: boolean } = {}): Promise<boolean> {
    const failedUntil = this.failedUntil.get(serverName);
    if (failedUntil !== undefined && failedUntil > this.now()) return Promise.resolve(false);
    const fetchedAt = this.fetchedAt.get(serverName);
    if (fetchedAt !== undefined && this.now() - fetchedAt < (this.options.minRefetchMs ?? 60_000)) return Promise.resolve(false);
    const key = `${serverName}${opts.directOnly ? '\u0000direct' : ''}`;
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    const run = this.doFetch(serverName, keyIds, minimumValidUntilTs, opts.directOnly ?? false).then(
      (stored) => {
        if (stored) {
          this.failedUntil.delete(serverName);
          this.fetchedAt.set(serverName, this.now());
        } else this.failedUntil.set(serverName, this.now() + this.negativeCacheMs);
        return stored;
      },
      () => {
        this.failedUntil.set(serverName, this.now() + this.negativeCacheMs);
        return false;
      },
    );
    this.inFlight.set(key, run);
    void run.finally(() => this.inFlight.delete(key));
    return run;
  }

  /**
   * Notaries first (as Synapse does with its trusted key servers), then the
   * server itself. Each answer must be self-signed by the server, and a
   * notary's answer also signed by the notary.
   */
  private async doFetch(serverName: string, keyIds: readonly string[], minimumValidUntilTs: number, directOnly: boolean): Promise<boolean> {
    if (!directOnly) {
      for (const notary of this.options.trustedKeyServers ?? []) {
        if (notary.server_name === this.options.serverName) continue;
        try {
          if (await this.fetchViaNotary(notary, serverName, keyIds, minimumValidUntilTs)) return true;
        } catch {
          // Unreachable or refusing notary: try the next, then the server.
        }
      }
    }
    return this.fetchDirect(serverName);
  }

  private async fetchDirect(serverName: string): Promise<boolean> {
    let response: JsonObject;
    try {
      response = await this.options.client.request<JsonObject>({
        destination: serverName,
        method: 'GET',
        path: '/_matrix/key/v2/server',
        signed: false,
        timeoutMs: KEY_FETCH_TIMEOUT_MS,
        maxResponseBytes: KEY_RESPONSE_MAX_BYTES,
      });
    } catch {
      return false;
    }
    const verified = verifyServerKeys(response, serverName);
    if (!verified.ok) return false;
    await this.store(verified.keys, response);
    return true;
  }

  private async fetchViaNotary(notary: TrustedNotary, serverName: string, keyIds: readonly string[], minimumValidUntilTs: number): Promise<boolean> {
    const criteria: Record<string, { minimum_valid_until_ts: number }> = {};
    for (const keyId of keyIds) criteria[keyId] = { minimum_valid_until_ts: minimumValidUntilTs };
    const answer = await this.options.client.request<JsonObject>({
      destination: notary.server_name,
      method: 'POST',
      path: '/_matrix/key/v2/query',
      body: { server_keys: { [serverName]: criteria } },
      signed: false,
      timeoutMs: KEY_FETCH_TIMEOUT_MS,
      maxResponseBytes: KEY_RESPONSE_MAX_BYTES,
    });
    const entries = answer['server_keys'];
    if (!Array.isArray(entries)) return false;
    const notaryKeys = await this.notaryKeys(notary);
    if (notaryKeys.size === 0) return false;
    let stored = false;
    for (const entry of entries) {
      if (!isRecord(entry) || entry['server_name'] !== serverName) continue;
      const verified = verifyServerKeys(entry, serverName);
      if (!verified.ok) continue;
      // "The notary server must sign the keys returned by the queried server."
      const byNotary = checkSignatures(entry, [notary.server_name], (_s, keyId) => {
        const key = notaryKeys.get(keyId);
        return key ? { key } : undefined;
      });
      if (!byNotary.ok) continue;
      await this.store(verified.keys, entry as JsonObject);
      stored = true;
    }
    return stored;
  }

  /** The notary's keys: pinned in the config, or (without them) fetched from the notary itself. */
  private async notaryKeys(notary: TrustedNotary): Promise<Map<string, string>> {
    if (notary.verify_keys && Object.keys(notary.verify_keys).length > 0) return new Map(Object.entries(notary.verify_keys));
    const rows = await this.rowsOf(notary.server_name);
    const now = this.now();
    let current = [...rows.values()].filter((r) => r.valid_until_ts !== null && r.valid_until_ts >= now);
    if (current.length === 0 && (await this.fetch(notary.server_name, [], now, { directOnly: true }))) {
      current = [...(await this.rowsOf(notary.server_name)).values()].filter((r) => r.valid_until_ts !== null && r.valid_until_ts >= now);
    }
    return new Map(current.map((r) => [r.key_id, r.key]));
  }

  private async store(keys: VerifiedServerKeys, response: JsonObject): Promise<void> {
    const collection = await this.keys();
    const now = this.now();
    const text = JSON.stringify(response);
    const validUntil = Math.min(keys.validUntilTs, now + MAX_KEY_VALIDITY_MS);
    const existing = await this.rowsOf(keys.serverName);
    const docs: RemoteServerKeyDoc[] = [];
    for (const [keyId, { key }] of Object.entries(keys.verifyKeys)) {
      docs.push({ _id: `${keys.serverName}|${keyId}`, server_name: keys.serverName, key_id: keyId, key, valid_until_ts: validUntil, expired_ts: null, response: text, response_valid_until_ts: keys.validUntilTs, fetched_ts: now });
    }
    for (const [keyId, { key, expiredTs }] of Object.entries(keys.oldVerifyKeys)) {
      docs.push({ _id: `${keys.serverName}|${keyId}`, server_name: keys.serverName, key_id: keyId, key, valid_until_ts: null, expired_ts: expiredTs, response: text, response_valid_until_ts: keys.validUntilTs, fetched_ts: now });
    }
    this.rowsMemory.delete(keys.serverName);
    for (const doc of docs) {
      const before = existing.get(doc.key_id);
      // A response older than a stored one still in force (a notary's stale
      // cache) does not replace it.
      const beforeInForce = before && (before.valid_until_ts ?? before.expired_ts ?? 0) >= now;
      if (before && beforeInForce && before.response_valid_until_ts > doc.response_valid_until_ts) continue;
      await collection.put(doc);
    }
    this.rowsMemory.delete(keys.serverName);
  }
}

/** A stored key can check a signature made at `atTs`: a current key valid until then, or an old key that expired after it. */
function usable(row: RemoteServerKeyDoc | undefined, atTs: number): boolean {
  if (!row) return false;
  if (row.valid_until_ts !== null) return row.valid_until_ts >= atTs;
  return row.expired_ts !== null && row.expired_ts >= atTs;
}

/**
 * Built key objects by Base64 key: building one from DER on every check makes
 * verification several times slower (ARCHITECTURE.md "libs/matrix").
 */
const keyObjects = new Map<string, KeyObject>();

function keyObjectOf(base64: string): KeyObject | string {
  let key = keyObjects.get(base64);
  if (!key) {
    try {
      key = verifyKeyFromBase64(base64);
    } catch {
      return base64; // checked on store, so not expected; verification then fails cleanly
    }
    if (keyObjects.size >= 10_000) keyObjects.clear();
    keyObjects.set(base64, key);
  }
  return key;
}

function toVerifyKey(row: RemoteServerKeyDoc): RemoteVerifyKey {
  return { serverName: row.server_name, keyId: row.key_id, key: keyObjectOf(row.key), validUntilTs: row.valid_until_ts ?? row.expired_ts ?? undefined };
}
