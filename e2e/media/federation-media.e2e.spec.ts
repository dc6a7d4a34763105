/**
 * Remote media between two Atrium servers federating over TLS on 127.0.0.1
 * (server-server-api "Content Repository": GET
 * /_matrix/federation/v1/media/download/{mediaId}, multipart/mixed; client-
 * server-api "Content repository": content is downloaded from the user's own
 * homeserver, "which must first transfer the content from the origin
 * homeserver"). Users of B fetch and thumbnail what users of A uploaded.
 */
import { readFileSync } from 'node:fs';
import sharp from 'sharp';
import { parse as parseYaml } from 'yaml';
import { FederationHttpError, HttpFederationClient, HttpsTransport, httpsWellKnownFetcher, IpRangeFilter, ServerNameResolver } from '@atrium/federation-client';
import { parseSigningKeyFile } from '@atrium/matrix';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { newUser, REGISTER_BURST_ENV, type Json, type TestUser } from '../support/fixtures';
import { startTestServer, type Mode, type TestServer } from '../support/servers';

const PASSWORD = 'pw-media-fed-123';
const modes = (process.env.ATRIUM_FEDERATION_MODES ?? 'embedded').split(',').map((m) => m.trim()) as Mode[];

describe.each(modes)('media across two Atrium servers (%s mode)', (mode) => {
  let ca: TestCa;
  let a: TestServer;
  let b: TestServer;
  let alice: TestUser;
  let bob: TestUser;

  beforeAll(async () => {
    ca = createTestCa();
    const options = { federationTls: ca, env: REGISTER_BURST_ENV };
    [a, b] = await Promise.all([startTestServer(mode, options), startTestServer(mode, options)]);
    alice = await newUser(a.baseUrl, 'alice', PASSWORD);
    bob = await newUser(b.baseUrl, 'bob', PASSWORD);
  }, 300_000);

  afterAll(async () => {
    alice?.sdk.stopClient();
    bob?.sdk.stopClient();
    await Promise.all([a?.stop(), b?.stop()]);
  });

  async function get(server: TestServer, path: string, token: string | null): Promise<{ status: number; headers: Headers; bytes: Buffer; json: Json }> {
    const res = await fetch(`${server.baseUrl}${path}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    const bytes = Buffer.from(await res.arrayBuffer());
    const json = (res.headers.get('content-type') ?? '').startsWith('application/json') ? (JSON.parse(bytes.toString('utf8')) as Json) : {};
    return { status: res.status, headers: res.headers, bytes, json };
  }

  const mediaPath = (mxc: string): string => {
    const [serverName, mediaId] = mxc.slice('mxc://'.length).split('/');
    return `${encodeURIComponent(serverName)}/${mediaId}`;
  };

  it("downloads A's media through B with the origin's bytes, type and filename", async () => {
    const bytes = await sharp({ create: { width: 300, height: 200, channels: 3, background: '#a52' } }).png().toBuffer();
    const { content_uri: mxc } = await alice.sdk.uploadContent(bytes, { name: 'from A.png', type: 'image/png' });
    expect(mxc.startsWith(`mxc://${a.serverName}/`)).toBe(true);

    const res = await get(b, `/_matrix/client/v1/media/download/${mediaPath(mxc)}`, bob.token);
    expect(res.status).toBe(200);
    expect(res.bytes.equals(bytes)).toBe(true);
    expect(res.headers.get('content-type')).toBe('image/png');
    expect(res.headers.get('content-disposition')).toBe('inline; filename="from A.png"');
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');

    // B made the thumbnail from its cached copy.
    const thumb = await get(b, `/_matrix/client/v1/media/thumbnail/${mediaPath(mxc)}?width=32&height=32&method=crop`, bob.token);
    expect(thumb.status).toBe(200);
    const meta = await sharp(thumb.bytes).metadata();
    expect([meta.width, meta.height]).toEqual([32, 32]);

    // The deprecated endpoint with allow_remote=false serves the cached copy, as nothing needs fetching.
    const cached = await get(b, `/_matrix/media/v3/download/${mediaPath(mxc)}?allow_remote=false`, null);
    expect(cached.status).toBe(200);
    expect(cached.bytes.equals(bytes)).toBe(true);
  });

  it('answers 404 for media the origin does not have, and does not fetch with allow_remote=false', async () => {
    const unknown = await get(b, `/_matrix/client/v1/media/download/${encodeURIComponent(a.serverName)}/noSuchMedia42`, bob.token);
    expect(unknown.status).toBe(404);
    expect(unknown.json.errcode).toBe('M_NOT_FOUND');

    const { content_uri: mxc } = await alice.sdk.uploadContent(Buffer.from('not fetched'), { name: 'x.txt', type: 'text/plain' });
    const refused = await get(b, `/_matrix/media/v3/download/${mediaPath(mxc)}?allow_remote=false`, null);
    expect(refused.status).toBe(404);
  });

  it("passes on the origin's 504 M_NOT_YET_UPLOADED for a created media ID", async () => {
    const created = await fetch(`${a.baseUrl}/_matrix/media/v1/create`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}` } });
    const { content_uri: mxc } = (await created.json()) as { content_uri: string };
    const pending = await get(b, `/_matrix/client/v1/media/download/${mediaPath(mxc)}?timeout_ms=300`, bob.token);
    expect(pending.status).toBe(504);
    expect(pending.json.errcode).toBe('M_NOT_YET_UPLOADED');
  });

  /** Signed federation requests as B, with B's own signing key. */
  function clientAsB(): { client: HttpFederationClient; close(): void } {
    const config = parseYaml(readFileSync(b.configPath, 'utf8')) as { signing_key_path: string };
    const [signingKey] = parseSigningKeyFile(readFileSync(config.signing_key_path, 'utf8'));
    const transport = new HttpsTransport({ extraCaPems: [readFileSync(ca.certPath, 'utf8')], ipFilter: new IpRangeFilter([], []) });
    const resolver = new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) });
    return { client: new HttpFederationClient({ serverName: b.serverName, signingKey, resolver, transport }), close: () => transport.close() };
  }

  it('serves a thumbnail over federation as multipart/mixed: {} then the image', async () => {
    const bytes = await sharp({ create: { width: 500, height: 400, channels: 3, background: '#258' } }).jpeg().toBuffer();
    const { content_uri: mxc } = await alice.sdk.uploadContent(bytes, { name: 'photo.jpg', type: 'image/jpeg' });
    const mediaId = mxc.split('/').pop()!;
    const { client, close } = clientAsB();
    try {
      const answer = await client.requestBytes({
        destination: a.serverName,
        method: 'GET',
        path: `/_matrix/federation/v1/media/thumbnail/${mediaId}`,
        query: { width: 96, height: 96, method: 'crop' },
      });
      expect(answer.status).toBe(200);
      const boundary = /^multipart\/mixed; boundary=(\S+)$/.exec(String(answer.headers['content-type']))?.[1];
      expect(boundary).toBeDefined();
      const text = answer.body.toString('latin1');
      const parts = text.split(`--${boundary}`);
      // preamble (empty), metadata, media, and the closing "--".
      expect(parts).toHaveLength(4);
      expect(parts[1]).toBe('\r\nContent-Type: application/json\r\n\r\n{}\r\n');
      expect(parts[3]).toBe('--\r\n');
      const [head, ...rest] = parts[2].split('\r\n\r\n');
      expect(head).toContain('Content-Type: image/jpeg');
      const image = Buffer.from(rest.join('\r\n\r\n').slice(0, -2), 'latin1');
      const meta = await sharp(image).metadata();
      expect([meta.width, meta.height, meta.format]).toEqual([96, 96, 'jpeg']);

      const missing = await client.requestBytes({ destination: a.serverName, method: 'GET', path: '/_matrix/federation/v1/media/download/noSuchMedia42' }).catch((err: unknown) => err);
      expect(missing).toBeInstanceOf(FederationHttpError);
      expect((missing as FederationHttpError).status).toBe(404);
      expect((missing as FederationHttpError).errcode).toBe('M_NOT_FOUND');
    } finally {
      close();
    }
  });

  it('answers 502 when the origin cannot be reached', async () => {
    const res = await get(b, '/_matrix/client/v1/media/download/127.0.0.1%3A1/abcdef', bob.token);
    expect(res.status).toBe(502);
  });
});
