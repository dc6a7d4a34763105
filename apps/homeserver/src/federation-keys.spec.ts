/**
 * Three embedded Atrium servers in this process, federating over TLS on
 * loopback (server names `127.0.0.1:<port>`, certificates from the test CA):
 * N is a notary, B trusts N (pinned key), A is the one whose keys are asked for.
 *
 * Spec: server-server-api "Retrieving server keys" (`/_matrix/key/v2/server`,
 * `/_matrix/key/v2/query` GET and POST), "Request Authentication".
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { buildConfig } from '@atrium/config';
import { FederationHttpError, HttpFederationClient, HttpsTransport, httpsWellKnownFetcher, IpRangeFilter, REMOTE_SERVER_KEYS_COLLECTION, ServerNameResolver, type RemoteServerKeyDoc } from '@atrium/federation-client';
import { checkSignatures, generateSigningKey, serialiseSigningKeyFile, verifyServerKeys, type JsonObject, type SigningKey } from '@atrium/matrix';
import type { RunningService } from '@atrium/platform';
import { createTestCa, freePort, type TestCa } from '@atrium/test-servers';
import { startEmbedded } from './embedded';

interface Peer {
  name: string;
  key: SigningKey;
  running: RunningService;
}

describe('federation keys between embedded Atrium servers', () => {
  let ca: TestCa;
  let transport: HttpsTransport;
  const peers: Peer[] = [];

  async function startPeer(extra: Record<string, unknown> = {}): Promise<Peer> {
    const port = await freePort();
    const name = `127.0.0.1:${port}`;
    const dir = mkdtempSync(join(tmpdir(), 'atrium-fedkeys-'));
    mkdirSync(join(dir, 'data'));
    const key = generateSigningKey();
    writeFileSync(join(dir, 'data', 'signing.key'), serialiseSigningKeyFile([key]), { mode: 0o600 });
    const cert = ca.issue(['127.0.0.1']);
    const yaml = stringify({
      server_name: name,
      data_dir: join(dir, 'data'),
      storage: { url: `sqlite:${join(dir, 'data', 'atrium.db')}` },
      telemetry: { log_level: 'silent' },
      listeners: { client: { host: '127.0.0.1', port: 0 }, federation: { host: '127.0.0.1', port, tls_certificate_path: cert.certPath, tls_private_key_path: cert.keyPath } },
      registration: { mode: 'open' },
      rate_limits: { enabled: false },
      federation: { trusted_ca_paths: [ca.certPath], ip_range_allowlist: ['127.0.0.1/32'], ...extra },
    });
    const running = await startEmbedded(buildConfig(yaml, {}));
    const peer = { name, key, running };
    peers.push(peer);
    return peer;
  }

  /** A federation client in the test process, signing as `as` (default: an origin nobody knows). */
  function client(as?: Peer): HttpFederationClient {
    const resolver = new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) });
    return new HttpFederationClient({ serverName: as?.name ?? 'nobody.invalid', signingKey: as?.key ?? generateSigningKey(), resolver, transport });
  }

  let a: Peer;
  let n: Peer;
  let b: Peer;

  beforeAll(async () => {
    ca = createTestCa();
    transport = new HttpsTransport({ extraCaPems: [readFileSync(ca.certPath, 'utf8')], ipFilter: new IpRangeFilter(['127.0.0.0/8'], ['127.0.0.1/32']) });
    a = await startPeer();
    n = await startPeer();
    b = await startPeer({ trusted_key_servers: [{ server_name: n.name, verify_keys: { [n.key.keyId]: n.key.publicKeyBase64 } }] });
  }, 60_000);

  afterAll(async () => {
    transport?.close();
    for (const peer of peers) await peer.running.stop();
  });

  it('serves its own keys over TLS, self-signed', async () => {
    const keys = await client().request({ destination: a.name, method: 'GET', path: '/_matrix/key/v2/server', signed: false });
    const verified = verifyServerKeys(keys, a.name);
    expect(verified.ok && Object.keys(verified.keys.verifyKeys)).toEqual([a.key.keyId]);
  });

  it("the notary fetches another server's keys and countersigns them (GET and POST /_matrix/key/v2/query)", async () => {
    const viaGet = await client().request<{ server_keys: JsonObject[] }>({ destination: n.name, method: 'GET', path: `/_matrix/key/v2/query/${encodeURIComponent(a.name)}`, signed: false });
    const viaPost = await client().request<{ server_keys: JsonObject[] }>({
      destination: n.name,
      method: 'POST',
      path: '/_matrix/key/v2/query',
      body: { server_keys: { [a.name]: { [a.key.keyId]: { minimum_valid_until_ts: Date.now() } }, 'unreachable.invalid': {} } },
      signed: false,
    });
    for (const answer of [viaGet, viaPost]) {
      expect(answer.server_keys).toHaveLength(1);
      const entry = answer.server_keys[0];
      expect(verifyServerKeys(entry, a.name)).toMatchObject({ ok: true });
      expect(checkSignatures(entry, [n.name], (_s, keyId) => (keyId === n.key.keyId ? { key: n.key.publicKeyBase64 } : undefined))).toMatchObject({ ok: true });
    }
    // Its own keys, asked of itself, are the ones it serves.
    const own = await client().request<{ server_keys: JsonObject[] }>({ destination: n.name, method: 'GET', path: `/_matrix/key/v2/query/${encodeURIComponent(n.name)}`, signed: false });
    expect(verifyServerKeys(own.server_keys[0], n.name)).toMatchObject({ ok: true });
  });

  it('the notary answers bad queries with Matrix errors, and an empty list for nothing asked', async () => {
    const c = client();
    await expect(c.request({ destination: n.name, method: 'POST', path: '/_matrix/key/v2/query', body: { server_keys: [] } as unknown as JsonObject, signed: false })).rejects.toMatchObject({ status: 400, errcode: 'M_BAD_JSON' });
    await expect(c.request({ destination: n.name, method: 'GET', path: `/_matrix/key/v2/query/${encodeURIComponent(a.name)}`, query: { minimum_valid_until_ts: 'soon' }, signed: false })).rejects.toMatchObject({ status: 400, errcode: 'M_INVALID_PARAM' });
    await expect(c.request({ destination: n.name, method: 'POST', path: '/_matrix/key/v2/query', body: { server_keys: {} }, signed: false })).resolves.toEqual({ server_keys: [] });
  });

  it("B checks A's signed request with A's keys fetched through the notary N", async () => {
    // A signed request from A to B on a guarded federation route: past the
    // guard the route may refuse for its own reasons, but never with 401.
    const err = await client(a)
      .request({ destination: b.name, method: 'GET', path: `/_matrix/federation/v1/make_join/${encodeURIComponent('!nowhere:' + b.name)}/${encodeURIComponent('@u:' + a.name)}`, query: { ver: '12' } })
      .catch((e: unknown) => e);
    if (err instanceof FederationHttpError) expect(err.status).not.toBe(401);
    else expect(err).not.toBeInstanceOf(Error);
    const keys = await (await b.running.platform.store.collection<RemoteServerKeyDoc>({ name: REMOTE_SERVER_KEYS_COLLECTION })).find({ server_name: a.name });
    expect(keys.map((k) => k.key_id)).toEqual([a.key.keyId]);
    // The stored response came through N: it carries N's signature.
    expect(Object.keys((JSON.parse(keys[0].response) as { signatures: object }).signatures).sort()).toEqual([a.name, n.name].sort());

    // The same request signed by a key A never published is refused.
    const forged = await client({ ...a, key: generateSigningKey() })
      .request({ destination: b.name, method: 'GET', path: `/_matrix/federation/v1/make_join/${encodeURIComponent('!nowhere:' + b.name)}/${encodeURIComponent('@u:' + a.name)}` })
      .catch((e: unknown) => e);
    expect(forged).toMatchObject({ status: 401, errcode: 'M_UNAUTHORIZED' });
  });

  describe('queries (server-server-api "Querying for information")', () => {
    /** The client API of a peer (its first port). */
    async function clientApi(peer: Peer, method: string, path: string, body?: unknown, token?: string): Promise<{ status: number; json: Record<string, unknown> }> {
      const res = await fetch(`http://127.0.0.1:${peer.running.ports[0]}${path}`, {
        method,
        headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, json: (await res.json()) as Record<string, unknown> };
    }

    async function register(peer: Peer, username: string): Promise<{ userId: string; token: string }> {
      const first = await clientApi(peer, 'POST', '/_matrix/client/v3/register', { username, password: 'correct horse battery' });
      const done = await clientApi(peer, 'POST', '/_matrix/client/v3/register', { username, password: 'correct horse battery', auth: { type: 'm.login.dummy', session: first.json['session'] } });
      expect(done.status).toBe(200);
      return { userId: done.json['user_id'] as string, token: done.json['access_token'] as string };
    }

    let bob: { userId: string; token: string };
    let roomId: string;
    /** B's space and its children (set by the /hierarchy test). */
    let bSpace: { space: string; open: string; closed: string } | undefined;
    const alias = (): string => `#lobby:${b.name}`;

    beforeAll(async () => {
      bob = await register(b, 'bob');
      expect((await clientApi(b, 'PUT', `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}/displayname`, { displayname: 'Bob B' }, bob.token)).status).toBe(200);
      const created = await clientApi(b, 'POST', '/_matrix/client/v3/createRoom', { room_alias_name: 'lobby', preset: 'public_chat', visibility: 'public', name: 'The Lobby' }, bob.token);
      expect(created.status).toBe(200);
      roomId = created.json['room_id'] as string;
    });

    it('answers signed /query/directory and /query/profile, and refuses unsigned ones', async () => {
      const asA = client(a);
      expect(await asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/directory', query: { room_alias: alias() } })).toEqual({ room_id: roomId, servers: [b.name] });
      await expect(asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/directory', query: { room_alias: `#nothing:${b.name}` } })).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
      expect(await asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: { user_id: bob.userId } })).toEqual({ displayname: 'Bob B' });
      expect(await asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: { user_id: bob.userId, field: 'displayname' } })).toEqual({ displayname: 'Bob B' });
      await expect(asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: { user_id: bob.userId, field: 'avatar_url' } })).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
      await expect(asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: { user_id: `@nobody:${b.name}` } })).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
      await expect(asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/profile' })).rejects.toMatchObject({ status: 400, errcode: 'M_MISSING_PARAM' });
      await expect(asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/weather' })).rejects.toMatchObject({ status: 404, errcode: 'M_UNRECOGNIZED' });
      await expect(client(a).request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/query/profile', query: { user_id: bob.userId }, signed: false })).rejects.toMatchObject({ status: 401, errcode: 'M_UNAUTHORIZED' });
    });

    it("A's clients resolve B's alias and read B's users' profiles through federation", async () => {
      const alice = await register(a, 'alice');
      expect(await clientApi(a, 'GET', `/_matrix/client/v3/directory/room/${encodeURIComponent(alias())}`)).toEqual({ status: 200, json: { room_id: roomId, servers: [b.name] } });
      expect(await clientApi(a, 'GET', `/_matrix/client/v3/directory/room/${encodeURIComponent(`#nothing:${b.name}`)}`)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      expect(await clientApi(a, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}`, undefined, alice.token)).toEqual({ status: 200, json: { displayname: 'Bob B' } });
      expect(await clientApi(a, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent(bob.userId)}/displayname`, undefined, alice.token)).toEqual({ status: 200, json: { displayname: 'Bob B' } });
      expect(await clientApi(a, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent(`@nobody:${b.name}`)}`, undefined, alice.token)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
      // A server that cannot be reached: not found, not a 500.
      expect(await clientApi(a, 'GET', `/_matrix/client/v3/profile/${encodeURIComponent('@x:127.0.0.1:1')}`, undefined, alice.token)).toMatchObject({ status: 404, json: { errcode: 'M_NOT_FOUND' } });
    });

    it('serves the published room directory over federation (GET, POST with a filter), and A\'s clients read it with ?server=', async () => {
      const asA = client(a);
      const listed = await asA.request<{ chunk: Array<Record<string, unknown>>; total_room_count_estimate: number }>({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/publicRooms' });
      expect(listed.chunk).toEqual([expect.objectContaining({ room_id: roomId, name: 'The Lobby', canonical_alias: alias(), num_joined_members: 1, world_readable: false, guest_can_join: false, join_rule: 'public' })]);
      expect(listed.total_room_count_estimate).toBe(1);
      const none = await asA.request<{ chunk: unknown[] }>({ destination: b.name, method: 'POST', path: '/_matrix/federation/v1/publicRooms', body: { filter: { generic_search_term: 'nothing like it' } } });
      expect(none.chunk).toEqual([]);
      const found = await asA.request<{ chunk: Array<Record<string, unknown>> }>({ destination: b.name, method: 'POST', path: '/_matrix/federation/v1/publicRooms', body: { limit: 10, filter: { generic_search_term: 'lobby' } } });
      expect(found.chunk.map((c) => c['room_id'])).toEqual([roomId]);
      await expect(asA.request({ destination: b.name, method: 'GET', path: '/_matrix/federation/v1/publicRooms', query: { limit: 'many' } })).rejects.toMatchObject({ status: 400, errcode: 'M_INVALID_PARAM' });

      const alice = await register(a, 'alice2');
      const viaClient = await clientApi(a, 'GET', `/_matrix/client/v3/publicRooms?server=${encodeURIComponent(b.name)}`);
      expect(viaClient).toMatchObject({ status: 200, json: { chunk: [expect.objectContaining({ room_id: roomId })], total_room_count_estimate: 1 } });
      const filtered = await clientApi(a, 'POST', `/_matrix/client/v3/publicRooms?server=${encodeURIComponent(b.name)}`, { filter: { generic_search_term: 'LOBBY' } }, alice.token);
      expect(filtered).toMatchObject({ status: 200, json: { chunk: [expect.objectContaining({ room_id: roomId })] } });
      expect(await clientApi(a, 'GET', `/_matrix/client/v3/publicRooms?server=${encodeURIComponent('127.0.0.1:1')}`)).toMatchObject({ status: 502, json: { errcode: 'M_UNKNOWN' } });
    });

    it('serves /hierarchy: the space with its reachable children, unreachable ones listed, a private room as unknown', async () => {
      const create = async (body: Record<string, unknown>): Promise<string> => {
        const res = await clientApi(b, 'POST', '/_matrix/client/v3/createRoom', body, bob.token);
        expect(res.status).toBe(200);
        return res.json['room_id'] as string;
      };
      const space = await create({ preset: 'public_chat', name: 'Space', creation_content: { type: 'm.space' } });
      const open = await create({ preset: 'public_chat', name: 'Open child' });
      const closed = await create({ preset: 'private_chat', name: 'Closed child' });
      bSpace = { space, open, closed };
      for (const [child, suggested] of [[open, true], [closed, false]] as const) {
        const put = await clientApi(b, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(space)}/state/m.space.child/${encodeURIComponent(child)}`, { via: [b.name], suggested }, bob.token);
        expect(put.status).toBe(200);
      }
      const asA = client(a);
      type Hierarchy = { room: Record<string, unknown> & { children_state: Array<Record<string, unknown>> }; children: Array<Record<string, unknown>>; inaccessible_children: string[] };
      const answer = await asA.request<Hierarchy>({ destination: b.name, method: 'GET', path: `/_matrix/federation/v1/hierarchy/${encodeURIComponent(space)}` });
      expect(answer.room).toMatchObject({ room_id: space, name: 'Space', room_type: 'm.space', join_rule: 'public', room_version: expect.any(String) });
      expect(answer.room.children_state.map((c) => c['state_key']).sort()).toEqual([open, closed].sort());
      expect(answer.room.children_state[0]).toMatchObject({ type: 'm.space.child', sender: bob.userId, origin_server_ts: expect.any(Number), content: { via: [b.name] } });
      expect(answer.children.map((c) => c['room_id'])).toEqual([open]);
      expect(answer.children[0]).toMatchObject({ name: 'Open child', children_state: [] });
      expect(answer.inaccessible_children).toEqual([closed]);
      const suggested = await asA.request<Hierarchy>({ destination: b.name, method: 'GET', path: `/_matrix/federation/v1/hierarchy/${encodeURIComponent(space)}`, query: { suggested_only: true } });
      expect(suggested.room.children_state.map((c) => c['state_key'])).toEqual([open]);
      await expect(asA.request({ destination: b.name, method: 'GET', path: `/_matrix/federation/v1/hierarchy/${encodeURIComponent(closed)}` })).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
      await expect(asA.request({ destination: b.name, method: 'GET', path: `/_matrix/federation/v1/hierarchy/${encodeURIComponent('!unknown:' + b.name)}` })).rejects.toMatchObject({ status: 404, errcode: 'M_NOT_FOUND' });
    });

    it("A's client /hierarchy walks into B's space over federation: B's rooms A does not know are described by B", async () => {
      expect(bSpace).toBeDefined();
      const { space, open, closed } = bSpace!;
      const carol = await register(a, 'carol');
      const created = await clientApi(a, 'POST', '/_matrix/client/v3/createRoom', { preset: 'public_chat', name: 'A space', creation_content: { type: 'm.space' } }, carol.token);
      expect(created.status).toBe(200);
      const aSpace = created.json['room_id'] as string;
      const put = await clientApi(a, 'PUT', `/_matrix/client/v3/rooms/${encodeURIComponent(aSpace)}/state/m.space.child/${encodeURIComponent(space)}`, { via: [b.name], suggested: true }, carol.token);
      expect(put.status).toBe(200);
      type Rooms = { rooms: Array<Record<string, unknown> & { children_state: Array<Record<string, unknown>> }> };
      const walked = await clientApi(a, 'GET', `/_matrix/client/v1/rooms/${encodeURIComponent(aSpace)}/hierarchy`, undefined, carol.token);
      expect(walked.status).toBe(200);
      const rooms = (walked.json as unknown as Rooms).rooms;
      expect(rooms.map((r) => r['room_id'])).toEqual([aSpace, space, open]);
      expect(rooms[1]).toMatchObject({ name: 'Space', room_type: 'm.space', join_rule: 'public' });
      expect(rooms[1].children_state.map((c) => c['state_key']).sort()).toEqual([open, closed].sort());
      expect(rooms[2]).toMatchObject({ name: 'Open child' });
      // suggested_only: B's space gives only its suggested child.
      const suggested = await clientApi(a, 'GET', `/_matrix/client/v1/rooms/${encodeURIComponent(aSpace)}/hierarchy?suggested_only=true`, undefined, carol.token);
      expect(((suggested.json as unknown as Rooms).rooms).map((r) => r['room_id'])).toEqual([aSpace, space, open]);
      // max_depth 1 stops at B's space.
      const shallow = await clientApi(a, 'GET', `/_matrix/client/v1/rooms/${encodeURIComponent(aSpace)}/hierarchy?max_depth=1`, undefined, carol.token);
      expect(((shallow.json as unknown as Rooms).rooms).map((r) => r['room_id'])).toEqual([aSpace, space]);
    });
  });
});
