/**
 * The content repository (client-server-api "Content repository";
 * data/api/client-server/content-repo.yaml, authed-content-repo.yaml;
 * server-server content_repository.yaml), both modes: uploads through
 * matrix-js-sdk and raw HTTP, downloads with their exact bytes and headers,
 * thumbnails of real images made here with sharp, /create with the
 * asynchronous upload, the limits, authentication of the v1 endpoints, URL
 * previews against a page served by the test, and federation media's
 * signature check.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import type { TestServer } from '../support/servers';
import { newUser, REGISTER_BURST_ENV, startWithUsers, type TestUser } from '../support/fixtures';

const modes = ['embedded', 'cluster'] as const;
const MAX_UPLOAD = 256 * 1024;
const MAX_PENDING = 3;
const UPLOAD_BURST = 40;

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Answer {
  status: number;
  headers: Headers;
  bytes: Buffer;
  json: Json;
}

async function pngOf(width: number, height: number, alpha = false): Promise<Buffer> {
  return sharp({ create: { width, height, channels: alpha ? 4 : 3, background: alpha ? { r: 200, g: 10, b: 10, alpha: 0.5 } : '#2a7' } }).png().toBuffer();
}

async function jpegOf(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: '#36c' } }).jpeg().toBuffer();
}

/** A two-frame animated GIF, width x height per frame. */
async function animatedGif(width: number, height: number): Promise<Buffer> {
  const frame = (color: string) => sharp({ create: { width, height, channels: 3, background: color } }).raw().toBuffer();
  const frames = Buffer.concat([await frame('#f00'), await frame('#00f')]);
  return sharp(frames, { raw: { width, height: height * 2, channels: 3, pageHeight: height } })
    .gif({ loop: 0, delay: [100, 100] })
    .toBuffer();
}

describe.each(modes)('media repository (%s mode)', (mode) => {
  let server: TestServer;
  let base: string;
  let alice: TestUser;
  let bob: TestUser;
  let page: Server;
  let pageBase: string;

  async function call(method: string, path: string, options: { token?: string | null; body?: Buffer | string; headers?: Record<string, string> } = {}): Promise<Answer> {
    const headers: Record<string, string> = { ...options.headers };
    if (options.token) headers.authorization = `Bearer ${options.token}`;
    const res = await fetch(`${base}${path}`, { method, headers, body: options.body });
    const bytes = Buffer.from(await res.arrayBuffer());
    let json: Json = {};
    if ((res.headers.get('content-type') ?? '').startsWith('application/json') && bytes.length > 0) json = JSON.parse(bytes.toString('utf8')) as Json;
    return { status: res.status, headers: res.headers, bytes, json };
  }

  async function upload(token: string, body: Buffer, contentType: string | undefined, filename?: string): Promise<string> {
    const query = filename === undefined ? '' : `?filename=${encodeURIComponent(filename)}`;
    const res = await call('POST', `/_matrix/media/v3/upload${query}`, { token, body, headers: contentType ? { 'content-type': contentType } : {} });
    expect(res.status).toBe(200);
    expect(res.json.content_uri).toMatch(/^mxc:\/\//);
    return res.json.content_uri as string;
  }

  /** `mxc://server/id` → `server/id` for paths. */
  const mxcPath = (mxc: string): string => {
    const [serverName, mediaId] = mxc.slice('mxc://'.length).split('/');
    return `${encodeURIComponent(serverName)}/${mediaId}`;
  };

  /** The two path segments of an mxc URI, for paths written out segment by segment. */
  const segments = (mxc: string): { origin: string; id: string } => {
    const [serverName, mediaId] = mxc.slice('mxc://'.length).split('/');
    return { origin: encodeURIComponent(serverName), id: mediaId };
  };

  function expectSecurityHeaders(res: Answer): void {
    expect(res.headers.get('content-security-policy')).toBe("sandbox; default-src 'none'; script-src 'none'; plugin-types application/pdf; style-src 'unsafe-inline'; object-src 'self';");
    expect(res.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
  }

  beforeAll(async () => {
    page = createServer((req, res) => {
      if (req.url === '/image.png') {
        void pngOf(64, 48).then((png) => res.writeHead(200, { 'content-type': 'image/png' }).end(png));
        return;
      }
      if (req.url === '/redirect') {
        res.writeHead(302, { location: 'http://10.9.9.9/internal' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(
        `<!doctype html><html><head><title>Fallback title</title>
         <meta property="og:title" content="Atrium &amp; media">
         <meta property="og:description" content="A page to preview">
         <meta property="og:image" content="/image.png">
         <meta property="og:type" content="website"></head><body>hello</body></html>`,
      );
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', resolve));
    pageBase = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    ({ server, users: [alice, bob] } = await startWithUsers(
      mode,
      {
        // Two media-repo processes behind the router: each request may land on either, so every
        // test also checks that the replicas share the stored files and the pending uploads.
        replicas: mode === 'cluster' ? { 'media-repo': 2 } : undefined,
        env: {
          ...REGISTER_BURST_ENV,
          ATRIUM_MEDIA__MAX_UPLOAD_SIZE: String(MAX_UPLOAD),
          ATRIUM_MEDIA__MAX_PENDING_UPLOADS: String(MAX_PENDING),
          ATRIUM_RATE_LIMITS__MEDIA_UPLOAD__BURST: String(UPLOAD_BURST),
          // The preview page is on loopback, which the default blocklist covers.
          ATRIUM_FEDERATION__IP_RANGE_ALLOWLIST: JSON.stringify(['127.0.0.1/32']),
        },
      },
      'pw-media-12345',
      ['alice', 'bob'],
    ));
    base = server.baseUrl;
  });

  afterAll(async () => {
    alice?.sdk.stopClient();
    bob?.sdk.stopClient();
    await server?.stop();
    await new Promise<void>((resolve) => page.close(() => resolve()));
  });

  it('advertises the upload limit on both config endpoints and wants a token on v1', async () => {
    const v1 = await call('GET', '/_matrix/client/v1/media/config', { token: alice.token });
    expect(v1.status).toBe(200);
    expect(v1.json).toEqual({ 'm.upload.size': MAX_UPLOAD });
    const v3 = await call('GET', '/_matrix/media/v3/config', { token: alice.token });
    expect(v3.json).toEqual({ 'm.upload.size': MAX_UPLOAD });
    const anonymous = await call('GET', '/_matrix/client/v1/media/config');
    expect(anonymous.status).toBe(401);
    expect(anonymous.json.errcode).toBe('M_MISSING_TOKEN');
  });

  it('round-trips an upload from matrix-js-sdk with the exact bytes and headers', async () => {
    const bytes = Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 37) % 256));
    const { content_uri: mxc } = await alice.sdk.uploadContent(bytes, { name: 'notes.txt', type: 'text/plain' });
    expect(mxc).toMatch(new RegExp(`^mxc://${server.serverName.replace(/[.]/g, '\\.')}/[A-Za-z0-9_-]+$`));

    // The deprecated unauthenticated URL matrix-js-sdk builds by default.
    const legacyUrl = alice.sdk.mxcUrlToHttp(mxc)!;
    expect(legacyUrl).toContain('/_matrix/media/v3/download/');
    const legacy = await call('GET', legacyUrl.slice(base.length));
    expect(legacy.status).toBe(200);
    expect(legacy.bytes.equals(bytes)).toBe(true);
    expect(legacy.headers.get('content-type')).toBe('text/plain');
    expect(legacy.headers.get('content-length')).toBe('5000');
    expect(legacy.headers.get('content-disposition')).toBe('inline; filename="notes.txt"');
    expectSecurityHeaders(legacy);

    // The authenticated one (useAuthentication = true).
    const authedUrl = alice.sdk.mxcUrlToHttp(mxc, undefined, undefined, undefined, false, false, true)!;
    expect(authedUrl).toContain('/_matrix/client/v1/media/download/');
    const authed = await call('GET', authedUrl.slice(base.length), { token: bob.token });
    expect(authed.status).toBe(200);
    expect(authed.bytes.equals(bytes)).toBe(true);
    expectSecurityHeaders(authed);
    const anonymous = await call('GET', authedUrl.slice(base.length));
    expect(anonymous.status).toBe(401);
    expect(anonymous.json.errcode).toBe('M_MISSING_TOKEN');
  });

  it('serves unsafe types as attachments, and the fileName of the path overrides the stored name', async () => {
    const html = Buffer.from('<script>alert(1)</script>');
    const mxc = await upload(alice.token, html, 'text/html', 'page.html');
    const res = await call('GET', `/_matrix/client/v1/media/download/${mxcPath(mxc)}`, { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/html');
    expect(res.headers.get('content-disposition')).toBe('attachment; filename="page.html"');
    expect(res.bytes.equals(html)).toBe(true);

    const { origin, id } = segments(mxc);
    const renamed = await call('GET', `/_matrix/client/v1/media/download/${origin}/${id}/${encodeURIComponent('résumé "final".html')}`, { token: alice.token });
    expect(renamed.headers.get('content-disposition')).toBe("attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20%22final%22.html");
    const legacyRenamed = await call('GET', `/_matrix/media/v3/download/${origin}/${id}/other.html`);
    expect(legacyRenamed.headers.get('content-disposition')).toBe('attachment; filename="other.html"');

    // No Content-Type on upload: application/octet-stream, no filename.
    const untyped = await upload(alice.token, Buffer.from([1, 2, 3]), undefined);
    const plain = await call('GET', `/_matrix/client/v1/media/download/${mxcPath(untyped)}`, { token: alice.token });
    expect(plain.headers.get('content-type')).toBe('application/octet-stream');
    expect(plain.headers.get('content-disposition')).toBe('attachment');
    expect([...plain.bytes]).toEqual([1, 2, 3]);
  });

  it('makes crop and scale thumbnails of a PNG and a JPEG, never upscaling', async () => {
    const png = await upload(alice.token, await pngOf(400, 300), 'image/png', 'big.png');
    const crop = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(png)}?width=32&height=32&method=crop`, { token: alice.token });
    expect(crop.status).toBe(200);
    expect(crop.headers.get('content-type')).toBe('image/png');
    expect(crop.headers.get('content-disposition')).toBe('inline; filename="thumbnail.png"');
    expectSecurityHeaders(crop);
    const cropMeta = await sharp(crop.bytes).metadata();
    expect([cropMeta.width, cropMeta.height, cropMeta.format]).toEqual([32, 32, 'png']);

    // 100x100 scale: the smallest scale size covering it is 320x240; the 4:3 image fills it.
    const { origin, id } = segments(png);
    const scale = await call('GET', `/_matrix/media/v3/thumbnail/${origin}/${id}?width=100&height=100&method=scale`);
    expect(scale.status).toBe(200);
    const scaleMeta = await sharp(scale.bytes).metadata();
    expect([scaleMeta.width, scaleMeta.height]).toEqual([320, 240]);

    const jpeg = await upload(alice.token, await jpegOf(1000, 500), 'image/jpeg', 'wide.jpg');
    const jpegThumb = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(jpeg)}?width=600&height=400&method=scale`, { token: alice.token });
    expect(jpegThumb.headers.get('content-type')).toBe('image/jpeg');
    expect(jpegThumb.headers.get('content-disposition')).toBe('inline; filename="thumbnail.jpg"');
    const jpegMeta = await sharp(jpegThumb.bytes).metadata();
    // 640x480 box, aspect kept: 640x320.
    expect([jpegMeta.width, jpegMeta.height, jpegMeta.format]).toEqual([640, 320, 'jpeg']);
    // Asked again: the cached thumbnail, same bytes.
    const again = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(jpeg)}?width=600&height=400&method=scale`, { token: alice.token });
    expect(again.bytes.equals(jpegThumb.bytes)).toBe(true);

    // Smaller than asked: the original content itself.
    const smallBytes = await pngOf(20, 10);
    const small = await upload(alice.token, smallBytes, 'image/png');
    const original = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(small)}?width=96&height=96&method=crop`, { token: alice.token });
    expect(original.status).toBe(200);
    expect(original.bytes.equals(smallBytes)).toBe(true);
  });

  it('animates a thumbnail of an animated GIF only when asked to', async () => {
    const gif = await upload(alice.token, await animatedGif(200, 200), 'image/gif', 'anim.gif');
    const animated = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(gif)}?width=96&height=96&method=crop&animated=true`, { token: alice.token });
    expect(animated.status).toBe(200);
    expect(animated.headers.get('content-type')).toBe('image/webp');
    const animatedMeta = await sharp(animated.bytes, { animated: true }).metadata();
    expect(animatedMeta.pages).toBe(2);
    expect([animatedMeta.width, animatedMeta.pageHeight]).toEqual([96, 96]);

    for (const flag of ['&animated=false', '']) {
      const still = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(gif)}?width=96&height=96&method=crop${flag}`, { token: alice.token });
      expect(still.headers.get('content-type')).toBe('image/png');
      const stillMeta = await sharp(still.bytes, { animated: true }).metadata();
      expect(stillMeta.pages ?? 1).toBe(1);
    }
  });

  it('refuses thumbnails it cannot make, and bad parameters', async () => {
    const text = await upload(alice.token, Buffer.from('not an image'), 'text/plain');
    const res = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(text)}?width=32&height=32`, { token: alice.token });
    expect(res.status).toBe(400);
    expect(res.json.errcode).toBe('M_UNKNOWN');
    const missing = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(text)}?height=32`, { token: alice.token });
    expect(missing.status).toBe(400);
    expect(missing.json.errcode).toBe('M_MISSING_PARAM');
    const negative = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(text)}?width=-3&height=32`, { token: alice.token });
    expect(negative.status).toBe(400);
    const method = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(text)}?width=3&height=32&method=stretch`, { token: alice.token });
    expect(method.status).toBe(400);
    expect(method.json.errcode).toBe('M_INVALID_PARAM');
    const anonymous = await call('GET', `/_matrix/client/v1/media/thumbnail/${mxcPath(text)}?width=32&height=32`);
    expect(anonymous.status).toBe(401);
  });

  it('creates a media ID, waits for its upload, and never overwrites it', async () => {
    const created = await call('POST', '/_matrix/media/v1/create', { token: alice.token });
    expect(created.status).toBe(200);
    const mxc = created.json.content_uri as string;
    expect(mxc).toMatch(/^mxc:\/\//);
    // The recommended 24 hours.
    expect(created.json.unused_expires_at).toBeGreaterThan(Date.now() + 23 * 3600_000);
    expect(created.json.unused_expires_at).toBeLessThanOrEqual(Date.now() + 24 * 3600_000);

    const early = await call('GET', `/_matrix/client/v1/media/download/${mxcPath(mxc)}?timeout_ms=300`, { token: alice.token });
    expect(early.status).toBe(504);
    expect(early.json.errcode).toBe('M_NOT_YET_UPLOADED');

    // A download waiting while the upload happens gets the bytes.
    const waiting = call('GET', `/_matrix/client/v1/media/download/${mxcPath(mxc)}?timeout_ms=15000`, { token: bob.token });
    await new Promise((resolve) => setTimeout(resolve, 300));
    const bytes = Buffer.from('uploaded later');
    const forbidden = await call('PUT', `/_matrix/media/v3/upload/${mxcPath(mxc)}`, { token: bob.token, body: bytes, headers: { 'content-type': 'text/plain' } });
    expect(forbidden.status).toBe(403);
    expect(forbidden.json.errcode).toBe('M_FORBIDDEN');
    const put = await call('PUT', `/_matrix/media/v3/upload/${mxcPath(mxc)}?filename=later.txt`, { token: alice.token, body: bytes, headers: { 'content-type': 'text/plain' } });
    expect(put.status).toBe(200);
    expect(put.json).toEqual({});
    const waited = await waiting;
    expect(waited.status).toBe(200);
    expect(waited.bytes.equals(bytes)).toBe(true);
    expect(waited.headers.get('content-disposition')).toBe('inline; filename="later.txt"');

    const again = await call('PUT', `/_matrix/media/v3/upload/${mxcPath(mxc)}`, { token: alice.token, body: Buffer.from('other'), headers: { 'content-type': 'text/plain' } });
    expect(again.status).toBe(409);
    expect(again.json.errcode).toBe('M_CANNOT_OVERWRITE_MEDIA');
    // An uploaded media ID cannot be PUT either.
    const uploaded = await upload(alice.token, Buffer.from('x'), 'text/plain');
    const onUploaded = await call('PUT', `/_matrix/media/v3/upload/${mxcPath(uploaded)}`, { token: alice.token, body: Buffer.from('y') });
    expect(onUploaded.status).toBe(409);

    const unknown = await call('PUT', `/_matrix/media/v3/upload/${encodeURIComponent(server.serverName)}/neverCreated123`, { token: alice.token, body: bytes });
    expect(unknown.status).toBe(404);
    expect(unknown.json.errcode).toBe('M_NOT_FOUND');
  });

  it('limits the pending media IDs of a user (429 M_LIMIT_EXCEEDED)', async () => {
    for (let i = 0; i < MAX_PENDING; i++) expect((await call('POST', '/_matrix/media/v1/create', { token: bob.token })).status).toBe(200);
    const over = await call('POST', '/_matrix/media/v1/create', { token: bob.token });
    expect(over.status).toBe(429);
    expect(over.json.errcode).toBe('M_LIMIT_EXCEEDED');
    // Another user is not affected.
    expect((await call('POST', '/_matrix/media/v1/create', { token: alice.token })).status).toBe(200);
  });

  it('refuses uploads over the limit with 413 M_TOO_LARGE, declared or streamed', async () => {
    const body = Buffer.alloc(MAX_UPLOAD + 1, 7);
    const declared = await call('POST', '/_matrix/media/v3/upload', { token: alice.token, body, headers: { 'content-type': 'application/octet-stream' } });
    expect(declared.status).toBe(413);
    expect(declared.json.errcode).toBe('M_TOO_LARGE');

    // Chunked, with no Content-Length: counted while it streams.
    const chunks = [Buffer.alloc(MAX_UPLOAD / 2, 1), Buffer.alloc(MAX_UPLOAD / 2, 2), Buffer.alloc(10, 3)];
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        const next = chunks.shift();
        if (next) controller.enqueue(next);
        else controller.close();
      },
    });
    const res = await fetch(`${base}/_matrix/media/v3/upload`, { method: 'POST', headers: { authorization: `Bearer ${alice.token}` }, body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as Json).errcode).toBe('M_TOO_LARGE');

    // Exactly the limit is fine.
    const exact = await upload(alice.token, Buffer.alloc(MAX_UPLOAD, 9), 'application/octet-stream');
    const back = await call('GET', `/_matrix/client/v1/media/download/${mxcPath(exact)}`, { token: alice.token });
    expect(back.bytes.length).toBe(MAX_UPLOAD);
  });

  it('limits the rate of uploads per user (429 M_LIMIT_EXCEEDED)', async () => {
    const carol = await newUser(base, 'carol', 'pw-media-12345');
    try {
      for (let i = 0; i < UPLOAD_BURST; i++) await upload(carol.token, Buffer.from(`n${i}`), 'text/plain');
      const over = await call('POST', '/_matrix/media/v3/upload', { token: carol.token, body: Buffer.from('one more'), headers: { 'content-type': 'text/plain' } });
      expect(over.status).toBe(429);
      expect(over.json.errcode).toBe('M_LIMIT_EXCEEDED');
      expect(over.json.retry_after_ms).toBeGreaterThan(0);
      const create = await call('POST', '/_matrix/media/v1/create', { token: carol.token });
      expect(create.status).toBe(429);
      // Others still upload.
      await upload(bob.token, Buffer.from('bob is fine'), 'text/plain');
    } finally {
      carol.sdk.stopClient();
    }
  });

  it('wants an access token to upload', async () => {
    const res = await call('POST', '/_matrix/media/v3/upload', { body: Buffer.from('x'), headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(401);
    expect(res.json.errcode).toBe('M_MISSING_TOKEN');
    const bad = await call('POST', '/_matrix/media/v3/upload', { token: 'not-a-token', body: Buffer.from('x') });
    expect(bad.status).toBe(401);
    expect(bad.json.errcode).toBe('M_UNKNOWN_TOKEN');
    const create = await call('POST', '/_matrix/media/v1/create');
    expect(create.status).toBe(401);
  });

  it('answers 404 M_NOT_FOUND for unknown media and 400 for malformed media IDs', async () => {
    const path = `${encodeURIComponent(server.serverName)}/doesNotExist123`;
    for (const [url, token] of [
      [`/_matrix/client/v1/media/download/${path}`, alice.token],
      [`/_matrix/media/v3/download/${path}`, null],
      [`/_matrix/client/v1/media/thumbnail/${path}?width=32&height=32`, alice.token],
      [`/_matrix/media/v3/thumbnail/${path}?width=32&height=32`, null],
    ] as const) {
      const res = await call('GET', url, { token });
      expect(res.status).toBe(404);
      expect(res.json.errcode).toBe('M_NOT_FOUND');
    }
    const traversal = await call('GET', `/_matrix/client/v1/media/download/${encodeURIComponent(server.serverName)}/${encodeURIComponent('..%2F..%2Fetc')}`, { token: alice.token });
    expect(traversal.status).toBe(400);
    // allow_remote=false: remote media is not fetched.
    const remote = await call('GET', '/_matrix/media/v3/download/remote.invalid/abc?allow_remote=false');
    expect(remote.status).toBe(404);
  });

  it('previews a URL: OpenGraph tags, the image stored as mxc, the blocklist applied', async () => {
    const res = await call('GET', `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`${pageBase}/article`)}&ts=${Date.now()}`, { token: alice.token });
    expect(res.status).toBe(200);
    expect(res.json['og:title']).toBe('Atrium & media');
    expect(res.json['og:description']).toBe('A page to preview');
    expect(res.json['og:type']).toBe('website');
    expect(res.json['og:image']).toMatch(/^mxc:\/\//);
    expect(res.json['og:image:type']).toBe('image/png');
    expect([res.json['og:image:width'], res.json['og:image:height']]).toEqual([64, 48]);
    const image = await call('GET', `/_matrix/client/v1/media/download/${mxcPath(res.json['og:image'] as string)}`, { token: alice.token });
    expect(image.status).toBe(200);
    expect(res.json['matrix:image:size']).toBe(image.bytes.length);
    expect((await sharp(image.bytes).metadata()).width).toBe(64);

    // The deprecated path answers the same (cached).
    const legacy = await call('GET', `/_matrix/media/v3/preview_url?url=${encodeURIComponent(`${pageBase}/article`)}`, { token: alice.token });
    expect(legacy.json['og:title']).toBe('Atrium & media');

    const blocked = await call('GET', `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent('http://10.1.2.3/secret')}`, { token: alice.token });
    expect(blocked.status).toBe(403);
    const redirected = await call('GET', `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(`${pageBase}/redirect`)}`, { token: alice.token });
    expect(redirected.status).toBe(403);
    const notHttp = await call('GET', `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent('file:///etc/passwd')}`, { token: alice.token });
    expect(notHttp.status).toBe(400);
    const missing = await call('GET', '/_matrix/client/v1/media/preview_url', { token: alice.token });
    expect(missing.status).toBe(400);
    expect(missing.json.errcode).toBe('M_MISSING_PARAM');
    const anonymous = await call('GET', `/_matrix/client/v1/media/preview_url?url=${encodeURIComponent(pageBase)}`);
    expect(anonymous.status).toBe(401);
  });

  it('refuses unsigned federation media requests', async () => {
    const mxc = await upload(alice.token, Buffer.from('fed'), 'text/plain');
    const mediaId = mxc.split('/').pop()!;
    const target = mode === 'embedded' ? server.federationUrl! : base;
    const res = await fetch(`${target}/_matrix/federation/v1/media/download/${mediaId}`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as Json).errcode).toBe('M_UNAUTHORIZED');
  });
});
