/**
 * Interop, transport only (no rooms): Atrium and its peer (a real Synapse, or a
 * second Atrium) fetch each other's keys over TLS, directly and through each other's notary endpoint,
 * and accept each other's signed (X-Matrix) requests.
 *
 * Spec: server-server-api "Retrieving server keys" (`/_matrix/key/v2/server`,
 * `/_matrix/key/v2/query`), "Request Authentication", "Querying for
 * information" (`/query/profile`).
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { httpsJson } from '@atrium/test-servers';
import { checkSignatures, parseSigningKeyFile, verifyServerKeys, type JsonObject } from '@atrium/matrix';
import { HttpFederationClient, HttpsTransport, httpsWellKnownFetcher, IpRangeFilter, remoteKeyId, ServerNameResolver, StoredKeyRing } from '@atrium/federation-client';
import { openDocumentStore } from '@atrium/storage';
import type { Json } from '../support/fixtures';
import { interopModes, peerLogs, useAtrium, interopPeers, usePeer, FEDERATION_WAIT_MS, waitWithLog } from '../support/interop';


describe.each(interopPeers())('federation transport (peer: %s)', (peerKind) => {
  const peers = usePeer(peerKind);
  describe.each(interopModes())('(%s mode)', (mode) => {
    const atrium = useAtrium(mode, peers);
    const enc = encodeURIComponent;

    /** Atrium's own key response, read over TLS trusting only the test CA (so the certificate is checked too). */
    async function atriumKeys(): Promise<Json> {
      const res = await httpsJson(`${atrium.server().federationUrl}/_matrix/key/v2/server`, { caPath: peers.ca().certPath });
      expect(res.status).toBe(200);
      return res.json;
    }

    async function peerKeys(): Promise<Json> {
      const res = await httpsJson(`${peers.federationUrl()}/_matrix/key/v2/server`, { caPath: peers.ca().certPath });
      expect(res.status).toBe(200);
      return res.json;
    }

    /** A federation client in the test process signing as Atrium (its key from its config), trusting the test CA. */
    function clientAsAtrium() {
      const config = parseYaml(readFileSync(atrium.server().configPath, 'utf8')) as { signing_key_path: string };
      const [signingKey] = parseSigningKeyFile(readFileSync(config.signing_key_path, 'utf8'));
      const transport = new HttpsTransport({ extraCaPems: [readFileSync(peers.ca().certPath, 'utf8')], ipFilter: new IpRangeFilter([], []) });
      const resolver = new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) });
      const client = new HttpFederationClient({ serverName: atrium.server().serverName, signingKey, resolver, transport });
      return { client, signingKey, close: () => transport.close() };
    }

    it('Atrium serves its self-signed keys over TLS with a certificate for its IP-literal server name', async () => {
      const keys = await atriumKeys();
      const checked = verifyServerKeys(keys, atrium.server().serverName);
      expect(checked).toMatchObject({ ok: true });
      expect(Object.keys(keys.verify_keys as Json).length).toBeGreaterThan(0);
    });

    it("the peer's notary fetches Atrium's keys over TLS and countersigns them (POST, then GET /_matrix/key/v2/query)", async () => {
      const own = await atriumKeys();
      const atriumName = atrium.server().serverName;
      const peerName = peers.serverName();
      const peerVerify = (await peerKeys()).verify_keys as Record<string, { key: string }>;
      // Synapse's notary fetches on a cache miss only for named key IDs (so both peers get named ones); a query naming none answers
      // what it has cached, which the POST just filled.
      const criteria = Object.fromEntries(Object.keys(own.verify_keys as Json).map((keyId) => [keyId, { minimum_valid_until_ts: Date.now() }]));
      const fromPost = await httpsJson(`${peers.federationUrl()}/_matrix/key/v2/query`, {
        method: 'POST',
        caPath: peers.ca().certPath,
        body: { server_keys: { [atriumName]: criteria } },
      });
      expect(fromPost.status).toBe(200);
      const fromGet = await httpsJson(`${peers.federationUrl()}/_matrix/key/v2/query/${enc(atriumName)}`, { caPath: peers.ca().certPath });
      expect(fromGet.status).toBe(200);
      for (const answer of [fromPost.json, fromGet.json]) {
        const entry = (answer.server_keys as Json[]).find((e) => e.server_name === atriumName);
        if (!entry) throw new Error(`${peers.label}'s notary answered no keys for Atrium: ${JSON.stringify(answer)}\n${peerLogs(peers, atrium)}`);
        expect(Object.keys(entry.verify_keys as Json)).toEqual(Object.keys(own.verify_keys as Json));
        expect(verifyServerKeys(entry, atriumName)).toMatchObject({ ok: true });
        // The notary's own signature, by a key the peer publishes.
        expect(checkSignatures(entry as JsonObject, [peerName], (_server, keyId) => peerVerify[keyId])).toMatchObject({ ok: true });
      }
    });

    it("Atrium's KeyRing fetches the peer's keys directly over TLS and checks them", async () => {
      const own = await peerKeys();
      const { client, signingKey, close } = clientAsAtrium();
      const store = await openDocumentStore('sqlite::memory:');
      try {
        const ring = new StoredKeyRing({ store, client, serverName: atrium.server().serverName, signingKey });
        const keyIds = Object.keys(own.verify_keys as Json);
        const found = await ring.getVerifyKeys([{ serverName: peers.serverName(), keyIds }]);
        expect([...found.keys()].sort()).toEqual(keyIds.map((keyId) => remoteKeyId(peers.serverName(), keyId)).sort());
        // The keys it learnt check the peer's own signature on what it publishes.
        const check = checkSignatures(own as JsonObject, [peers.serverName()], (server, keyId) => found.get(remoteKeyId(server, keyId)));
        expect(check).toMatchObject({ ok: true });
      } finally {
        await store.close();
        close();
      }
    });

    it("Atrium's notary answers the peer's keys countersigned (GET /_matrix/key/v2/query/{peer})", async () => {
      const own = await peerKeys();
      const atriumVerify = (await atriumKeys()).verify_keys as Record<string, { key: string }>;
      const res = await httpsJson(`${atrium.server().federationUrl}/_matrix/key/v2/query/${enc(peers.serverName())}`, { caPath: peers.ca().certPath });
      expect(res.status).toBe(200);
      const entry = (res.json.server_keys as Json[]).find((e) => e.server_name === peers.serverName());
      if (!entry) throw new Error(`Atrium's notary answered no keys for ${peers.label}: ${res.text}\n${peerLogs(peers, atrium)}`);
      expect(Object.keys(entry.verify_keys as Json)).toEqual(Object.keys(own.verify_keys as Json));
      expect(verifyServerKeys(entry, peers.serverName())).toMatchObject({ ok: true });
      expect(checkSignatures(entry as JsonObject, [atrium.server().serverName], (_server, keyId) => atriumVerify[keyId])).toMatchObject({ ok: true });
    });

    it("Atrium's federation client reaches the peer's /version, and the peer accepts its signed /query/profile (checking Atrium's key)", async () => {
      const bob = await peers.user('bob');
      expect((await bob.api('PUT', `/profile/${enc(bob.userId)}/displayname`, { displayname: 'Bob on the peer' })).status).toBe(200);
      const { client, close } = clientAsAtrium();
      try {
        const version = await client.request<Json>({ destination: peers.serverName(), method: 'GET', path: '/_matrix/federation/v1/version' });
        expect(version.server).toMatchObject({ name: peerKind === 'synapse' ? 'Synapse' : 'Atrium' });
        // Authenticated: the peer fetches Atrium's key (from the running Atrium) to check the X-Matrix signature.
        const profile = await client.request<Json>({
          destination: peers.serverName(),
          method: 'GET',
          path: '/_matrix/federation/v1/query/profile',
          query: { user_id: bob.userId, field: 'displayname' },
        });
        expect(profile).toEqual({ displayname: 'Bob on the peer' });
      } finally {
        close();
      }
    });

    it("the peer's signed /query/profile reaches Atrium (a peer user reads an Atrium user's profile)", async () => {
      const alice = await atrium.user('alice');
      expect((await alice.api('PUT', `/profile/${enc(alice.userId)}/displayname`, { displayname: 'Alice on Atrium' })).status).toBe(200);
      const bob = await peers.user('bob');
      const profile = await waitWithLog(
        `${alice.userId}'s profile through ${peers.label}`,
        async () => {
          const res = await bob.api('GET', `/profile/${enc(alice.userId)}`);
          return res.status === 200 ? res.json : undefined;
        },
        FEDERATION_WAIT_MS,
        500,
      ).catch((err: Error) => {
        throw new Error(`${err.message}\n${peerLogs(peers, atrium)}`);
      });
      expect(profile.displayname).toBe('Alice on Atrium');
    });
  });
});
