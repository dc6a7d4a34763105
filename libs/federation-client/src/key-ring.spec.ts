/**
 * StoredKeyRing against real HTTPS servers on loopback (test CA) and a real
 * SQLite store. Spec: server-server-api "Retrieving server keys" (direct and
 * through a notary), v5-signing-requirements (7-day cap).
 */
import { readFileSync } from 'node:fs';
import { buildServerKeys, generateSigningKey, signJson, type JsonObject, type ServerKeys, type SigningKey } from '@atrium/matrix';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { remoteKeyId } from './api';
import { HttpFederationClient } from './client';
import { IpRangeFilter } from './ip-ranges';
import { REMOTE_SERVER_KEYS_COLLECTION, StoredKeyRing, type RemoteServerKeyDoc, type StoredKeyRingOptions } from './key-ring';
import { httpsWellKnownFetcher, ServerNameResolver } from './resolver';
import { HttpsTransport } from './transport';
import { sendJson, startHttps, type RunningHttps } from './testing/https-server';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

/** A remote homeserver that publishes keys (what it publishes can change between tests). */
interface FakeServer {
  name: string;
  http: RunningHttps;
  key: SigningKey;
  publish: () => ServerKeys | string;
  keyRequests(): number;
}

describe('StoredKeyRing', () => {
  let ca: TestCa;
  let transport: HttpsTransport;
  let client: HttpFederationClient;
  let store: DocumentStore;
  const us = generateSigningKey();
  const servers: FakeServer[] = [];
  const clock = { now: Date.now() };

  async function fakeServer(publish?: (s: FakeServer) => ServerKeys | string, extra?: (url: string, body: string) => unknown): Promise<FakeServer> {
    const key = generateSigningKey();
    const self = { key } as FakeServer;
    self.publish = () => (publish ? publish(self) : buildServerKeys({ serverName: self.name, signingKeys: [key], validUntilTs: clock.now + DAY }));
    self.http = await startHttps(ca.issue(['127.0.0.1']), (req, res) => {
      if (req.url === '/_matrix/key/v2/server') return sendJson(res, 200, self.publish());
      const answer = extra?.(req.url, req.body);
      if (answer !== undefined) return sendJson(res, 200, answer);
      sendJson(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'no' });
    });
    self.name = `127.0.0.1:${self.http.port}`;
    self.keyRequests = () => self.http.requests.filter((r) => r.url === '/_matrix/key/v2/server').length;
    servers.push(self);
    return self;
  }

  /** A notary that answers /query from the servers' published keys, countersigned with its own key. */
  async function fakeNotary(): Promise<FakeServer> {
    const notary: FakeServer = await fakeServer(undefined, (url, body) => {
      if (url !== '/_matrix/key/v2/query') return undefined;
      const asked = Object.keys((JSON.parse(body) as { server_keys: Record<string, unknown> }).server_keys);
      const entries = asked.flatMap((name) => {
        const server = servers.find((s) => s.name === name);
        return server ? [signJson(server.publish() as ServerKeys, notary.name, notary.key)] : [];
      });
      return { server_keys: entries };
    });
    return notary;
  }

  function ring(options: Partial<StoredKeyRingOptions> = {}): StoredKeyRing {
    return new StoredKeyRing({ store, client, serverName: 'us.test', signingKey: us, now: () => clock.now, ...options });
  }

  beforeAll(async () => {
    ca = createTestCa();
    transport = new HttpsTransport({ extraCaPems: [readFileSync(ca.certPath, 'utf8')], ipFilter: new IpRangeFilter(['127.0.0.0/8'], ['127.0.0.1/32']) });
    client = new HttpFederationClient({ serverName: 'us.test', signingKey: us, resolver: new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) }), transport });
  });

  beforeEach(async () => {
    store = await openDocumentStore('sqlite::memory:');
    clock.now = Date.now();
  });

  afterEach(async () => {
    await store.close();
  });

  afterAll(async () => {
    transport.close();
    await Promise.all(servers.map((s) => s.http.close()));
  });

  it('fetches a server\'s keys directly, stores one row per key with the response, and answers from storage next time', async () => {
    const a = await fakeServer();
    const keys = await ring().getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }]);
    expect(keys.get(remoteKeyId(a.name, a.key.keyId))).toMatchObject({ serverName: a.name, keyId: a.key.keyId, validUntilTs: clock.now + DAY });
    const rows = await (await store.collection<RemoteServerKeyDoc>({ name: REMOTE_SERVER_KEYS_COLLECTION })).find({ server_name: a.name });
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ key_id: a.key.keyId, key: a.key.publicKeyBase64, expired_ts: null });
    expect(JSON.parse(rows[0].response)).toMatchObject({ server_name: a.name, signatures: { [a.name]: expect.any(Object) } });
    // A new KeyRing (another process) reads what is stored.
    expect((await ring().getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])).size).toBe(1);
    expect(a.keyRequests()).toBe(1);
  });

  it('reuses stored rows from memory for 30 s, then reads the store again', async () => {
    const a = await fakeServer();
    const r = ring({ minRefetchMs: 60_000 });
    await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }]);
    // Rows removed behind its back (as another process's cleanup would): still answered from memory…
    await (await store.collection<RemoteServerKeyDoc>({ name: REMOTE_SERVER_KEYS_COLLECTION })).deleteMany({ server_name: a.name });
    expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])).size).toBe(1);
    // …until the memory expires and the store is read again (no refetch within minRefetchMs).
    clock.now += 30_001;
    expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])).size).toBe(0);
    expect(a.keyRequests()).toBe(1);
  });

  it('coalesces concurrent fetches for one server', async () => {
    const a = await fakeServer();
    const r = ring();
    const results = await Promise.all(Array.from({ length: 5 }, () => r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])));
    expect(results.every((m) => m.size === 1)).toBe(true);
    expect(a.keyRequests()).toBe(1);
  });

  it('refetches once valid_until_ts has passed, and caps validity at 7 days from the fetch', async () => {
    let validity = 30 * DAY;
    const a = await fakeServer((s) => buildServerKeys({ serverName: s.name, signingKeys: [s.key], validUntilTs: clock.now + validity }));
    const r = ring({ minRefetchMs: 0 });
    const first = await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }]);
    expect(first.get(remoteKeyId(a.name, a.key.keyId))?.validUntilTs).toBe(clock.now + 7 * DAY);
    validity = HOUR;
    clock.now += 7 * DAY + 1;
    const second = await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }]);
    expect(second.get(remoteKeyId(a.name, a.key.keyId))?.validUntilTs).toBe(clock.now + HOUR);
    expect(a.keyRequests()).toBe(2);
    // A signature from the past is still checkable with the stored key without a fetch.
    await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId], atTs: clock.now - DAY }]);
    expect(a.keyRequests()).toBe(2);
  });

  it('honours old_verify_keys for timestamps before their expired_ts only', async () => {
    const old = generateSigningKey();
    const expiredTs = clock.now - HOUR;
    const a = await fakeServer((s) => buildServerKeys({ serverName: s.name, signingKeys: [s.key], oldVerifyKeys: { [old.keyId]: { key: old.publicKeyBase64, expired_ts: expiredTs } }, validUntilTs: clock.now + DAY }));
    const r = ring();
    const past = await r.getVerifyKeys([{ serverName: a.name, keyIds: [old.keyId], atTs: expiredTs - 1000 }]);
    expect(past.get(remoteKeyId(a.name, old.keyId))).toMatchObject({ validUntilTs: expiredTs });
    const now = await r.getVerifyKeys([{ serverName: a.name, keyIds: [old.keyId] }]);
    expect(now.size).toBe(0);
  });

  it('refuses a response with a bad self-signature, and does not ask again for a while (negative cache)', async () => {
    const a = await fakeServer((s) => {
      const keys = buildServerKeys({ serverName: s.name, signingKeys: [s.key], validUntilTs: clock.now + DAY });
      return { ...keys, valid_until_ts: keys.valid_until_ts + 1 }; // signed over another value
    });
    const r = ring({ negativeCacheMs: 60_000 });
    expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])).size).toBe(0);
    expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])).size).toBe(0);
    expect(a.keyRequests()).toBe(1);
    clock.now += 60_001;
    await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }]);
    expect(a.keyRequests()).toBe(2);
  });

  it('does not refetch at once for a key ID the server does not have', async () => {
    const a = await fakeServer();
    const r = ring();
    await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }]);
    expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: ['ed25519:made_up'] }])).size).toBe(0);
    expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: ['ed25519:made_up2'] }])).size).toBe(0);
    expect(a.keyRequests()).toBe(1);
  });

  it('answers our own keys without any request', async () => {
    const oldOwn = generateSigningKey();
    const r = ring({ oldSigningKeys: { [oldOwn.keyId]: { key: oldOwn.publicKeyBase64, expired_ts: clock.now - 10 } } });
    const keys = await r.getVerifyKeys([
      { serverName: 'us.test', keyIds: [us.keyId] },
      { serverName: 'us.test', keyIds: [oldOwn.keyId], atTs: clock.now - 20 },
    ]);
    expect(keys.size).toBe(2);
  });

  describe('through a notary', () => {
    it('uses a notary with pinned keys first, checking its signature, without contacting the server', async () => {
      const notary = await fakeNotary();
      const a = await fakeServer();
      const r = ring({ trustedKeyServers: [{ server_name: notary.name, verify_keys: { [notary.key.keyId]: notary.key.publicKeyBase64 } }] });
      const keys = await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }]);
      expect(keys.size).toBe(1);
      expect(a.keyRequests()).toBe(0);
      const query = notary.http.requests.find((q) => q.url === '/_matrix/key/v2/query');
      expect(JSON.parse(query!.body)).toEqual({ server_keys: { [a.name]: { [a.key.keyId]: { minimum_valid_until_ts: clock.now } } } });
      // The stored response keeps the notary's signature.
      const row = (await (await store.collection<RemoteServerKeyDoc>({ name: REMOTE_SERVER_KEYS_COLLECTION })).find({ server_name: a.name }))[0];
      expect(Object.keys((JSON.parse(row.response) as { signatures: object }).signatures).sort()).toEqual([a.name, notary.name].sort());
    });

    it('ignores a notary answer not signed by the pinned key and falls back to the server itself', async () => {
      const notary = await fakeNotary();
      const a = await fakeServer();
      const r = ring({ trustedKeyServers: [{ server_name: notary.name, verify_keys: { [notary.key.keyId]: generateSigningKey().publicKeyBase64 } }] });
      expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])).size).toBe(1);
      expect(a.keyRequests()).toBe(1);
    });

    it('without pinned keys, fetches the notary\'s own keys from it (trust on first use)', async () => {
      const notary = await fakeNotary();
      const a = await fakeServer();
      const r = ring({ trustedKeyServers: [{ server_name: notary.name }] });
      expect((await r.getVerifyKeys([{ serverName: a.name, keyIds: [a.key.keyId] }])).size).toBe(1);
      expect(notary.keyRequests()).toBe(1);
      expect(a.keyRequests()).toBe(0);
    });
  });

  describe('serverKeyResponses (for our notary endpoint)', () => {
    it('fetches when nothing stored is valid long enough, and serves the cache when the server is gone', async () => {
      const a = await fakeServer();
      const r = ring({ minRefetchMs: 0 });
      const first = await r.serverKeyResponses(a.name, clock.now);
      expect(first).toHaveLength(1);
      expect(first[0]).toMatchObject({ server_name: a.name, valid_until_ts: clock.now + DAY });
      await r.serverKeyResponses(a.name, clock.now + HOUR);
      expect(a.keyRequests()).toBe(1);
      await a.http.close();
      const cached: JsonObject[] = await r.serverKeyResponses(a.name, clock.now + 2 * DAY);
      expect(cached).toHaveLength(1);
      expect(a.keyRequests()).toBe(1);
    });

    it('answers nothing for a server never reached', async () => {
      expect(await ring().serverKeyResponses('127.0.0.1:1', clock.now)).toEqual([]);
    });
  });
});
