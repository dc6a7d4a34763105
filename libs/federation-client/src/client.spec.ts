/**
 * HttpFederationClient against real HTTPS servers on loopback (certificates
 * from the test CA): signing (server-server-api "Request Authentication"),
 * the Host header of "Resolving server names" step 1/2, TLS checks, the IP
 * blocklist on the connected address, errors, limits.
 */
import { readFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { DEFAULT_IP_RANGE_BLOCKLIST } from '@atrium/config';
import { generateSigningKey, verifyRequest, type JsonObject } from '@atrium/matrix';
import { initTelemetry } from '@atrium/telemetry';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { FederationHttpError, FederationUnreachableError } from './api';
import { HttpFederationClient, requestTarget } from './client';
import { IpRangeFilter } from './ip-ranges';
import { httpsWellKnownFetcher, ServerNameResolver } from './resolver';
import { HttpsTransport } from './transport';
import { sendJson, startHttps, type RunningHttps } from './testing/https-server';

const LOOPBACK_ALLOWED = ['127.0.0.1/32', '::1/128'];

describe('HttpFederationClient over TLS', () => {
  let ca: TestCa;
  let otherCa: TestCa;
  let server: RunningHttps;
  let untrusted: RunningHttps;
  let wrongName: RunningHttps;
  const ourKey = generateSigningKey();
  const transports: HttpsTransport[] = [];

  function clientWith(options: { blocklist?: readonly string[]; allowlist?: readonly string[]; cas?: TestCa[] } = {}): HttpFederationClient {
    const transport = new HttpsTransport({
      extraCaPems: (options.cas ?? [ca]).map((c) => readFileSync(c.certPath, 'utf8')),
      ipFilter: new IpRangeFilter(options.blocklist ?? DEFAULT_IP_RANGE_BLOCKLIST, options.allowlist ?? LOOPBACK_ALLOWED),
    });
    transports.push(transport);
    const resolver = new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) });
    return new HttpFederationClient({ serverName: 'us.example', signingKey: ourKey, resolver, transport });
  }

  beforeAll(async () => {
    ca = createTestCa();
    otherCa = createTestCa();
    server = await startHttps(ca.issue(['127.0.0.1', 'localhost', '::1']), (req, res) => {
      const path = req.url.split('?')[0];
      if (path === '/_matrix/federation/v1/echo') {
        sendJson(res, 200, { method: req.method, url: req.url, host: req.headers.host, authorization: req.headers.authorization ?? null, body: req.body === '' ? null : JSON.parse(req.body), contentType: req.headers['content-type'] ?? null, traceparent: req.headers.traceparent ?? null });
      } else if (path === '/_matrix/federation/v1/forbidden') {
        sendJson(res, 403, { errcode: 'M_FORBIDDEN', error: 'go away' });
      } else if (path === '/_matrix/federation/v1/html') {
        res.writeHead(502, { 'Content-Type': 'text/html' });
        res.end('<html>bad gateway</html>');
      } else if (path === '/_matrix/federation/v1/notjson') {
        res.writeHead(200, { 'Content-Type': 'text/plain' });
        res.end('hello');
      } else if (path === '/_matrix/federation/v1/big') {
        sendJson(res, 200, { data: 'x'.repeat(200_000) });
      } else if (path === '/_matrix/federation/v1/slow') {
        setTimeout(() => sendJson(res, 200, {}), 3000).unref();
      } else {
        sendJson(res, 404, { errcode: 'M_UNRECOGNIZED', error: 'Unrecognized request' });
      }
    });
    untrusted = await startHttps(otherCa.issue(['127.0.0.1']), (_req, res) => sendJson(res, 200, {}));
    wrongName = await startHttps(ca.issue(['other.example']), (_req, res) => sendJson(res, 200, {}));
  });

  afterAll(async () => {
    for (const t of transports) t.close();
    await Promise.all([server.close(), untrusted.close(), wrongName.close()]);
  });

  it('sends a signed request that verifies, with the Host header of the server name and the query as signed', async () => {
    const destination = `127.0.0.1:${server.port}`;
    const answer = await clientWith().request<Record<string, unknown>>({
      destination,
      method: 'PUT',
      path: '/_matrix/federation/v1/echo',
      query: { user_id: '@a b:c', v: ['1', 2] },
      body: { hello: ['world', 1] },
    });
    expect(answer.host).toBe(destination);
    expect(answer.url).toBe('/_matrix/federation/v1/echo?user_id=%40a%20b%3Ac&v=1&v=2');
    expect(answer.body).toEqual({ hello: ['world', 1] });
    expect(answer.contentType).toBe('application/json');
    const lookup = (server: string, keyId: string) => (server === 'us.example' && keyId === ourKey.keyId ? { key: ourKey.publicKeyBase64 } : undefined);
    const verified = verifyRequest({ method: 'PUT', uri: answer.url as string, content: answer.body as JsonObject, authorization: answer.authorization as string }, destination, lookup);
    expect(verified).toEqual({ ok: true, origin: 'us.example', keyId: ourKey.keyId });
    // Signed for that destination: another server name would refuse it.
    expect(verifyRequest({ method: 'PUT', uri: answer.url as string, content: answer.body as JsonObject, authorization: answer.authorization as string }, 'someone.else', lookup)).toMatchObject({ ok: false, reason: 'wrong-destination' });
  });

  it('with telemetry, runs in a federation.request span, sends its trace context (traceparent) and is counted by outcome', async () => {
    const telemetry = initTelemetry({ serviceName: 'federation-client-test', logLevel: 'silent' });
    try {
      const transport = new HttpsTransport({ extraCaPems: [readFileSync(ca.certPath, 'utf8')], ipFilter: new IpRangeFilter(DEFAULT_IP_RANGE_BLOCKLIST, LOOPBACK_ALLOWED) });
      transports.push(transport);
      const traced = new HttpFederationClient({ serverName: 'us.example', signingKey: ourKey, resolver: new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(transport) }), transport, telemetry });
      const { traceId, answer } = await telemetry.withSpan('test.parent', {}, async () => ({
        traceId: telemetry.currentTraceId(),
        answer: await traced.request<Record<string, unknown>>({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/echo' }),
      }));
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(answer.traceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[01]$`));
      const metrics = (await telemetry.metricsText()).body;
      expect(metrics).toMatch(/atrium_federation_client_request_duration_seconds_count\{method="GET",outcome="2xx"\} [1-9]/);
      await expect(traced.request({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/forbidden' })).rejects.toMatchObject({ status: 403 });
      expect((await telemetry.metricsText()).body).toMatch(/atrium_federation_client_request_duration_seconds_count\{method="GET",outcome="4xx"\} 1/);
      // The untraced client sends none.
      expect((await clientWith().request<Record<string, unknown>>({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/echo' })).traceparent).toBeNull();
    } finally {
      await telemetry.shutdown();
    }
  });

  it('omits the Authorization header when asked (key APIs), and signs a GET without content', async () => {
    const unsigned = await clientWith().request<Record<string, unknown>>({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/echo', signed: false });
    expect(unsigned.authorization).toBeNull();
    const signed = await clientWith().request<Record<string, unknown>>({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/echo' });
    const lookup = () => ({ key: ourKey.publicKeyBase64 });
    expect(verifyRequest({ method: 'GET', uri: '/_matrix/federation/v1/echo', authorization: signed.authorization as string }, `127.0.0.1:${server.port}`, lookup)).toMatchObject({ ok: true });
  });

  it('resolves a hostname with a port by DNS (localhost) and checks the certificate for it', async () => {
    const answer = await clientWith().request<Record<string, unknown>>({ destination: `localhost:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/echo' });
    expect(answer.host).toBe(`localhost:${server.port}`);
  });

  it('turns a Matrix error into FederationHttpError with status and errcode, and a non-JSON error too', async () => {
    const client = clientWith();
    const err = await client.request({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/forbidden' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationHttpError);
    expect(err).toMatchObject({ status: 403, errcode: 'M_FORBIDDEN', body: { errcode: 'M_FORBIDDEN', error: 'go away' }, destination: `127.0.0.1:${server.port}` });
    const html = await client.request({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/html' }).catch((e: unknown) => e);
    expect(html).toMatchObject({ status: 502, errcode: undefined, body: '<html>bad gateway</html>' });
  });

  it.each([
    ['an answer that is not JSON', '/_matrix/federation/v1/notjson', {}, 'protocol'],
    ['an answer over the size cap', '/_matrix/federation/v1/big', { maxResponseBytes: 100_000 }, 'protocol'],
    ['an answer after the deadline', '/_matrix/federation/v1/slow', { timeoutMs: 500 }, 'timeout'],
  ])('refuses %s', async (_what, path, extra, reason) => {
    const err = await clientWith().request({ destination: `127.0.0.1:${server.port}`, method: 'GET', path, ...extra }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FederationUnreachableError);
    expect(err).toMatchObject({ reason });
  });

  it('refuses a certificate from an untrusted CA, and one for another name', async () => {
    await expect(clientWith().request({ destination: `127.0.0.1:${untrusted.port}`, method: 'GET', path: '/_matrix/key/v2/server', signed: false })).rejects.toMatchObject({ reason: 'tls' });
    await expect(clientWith().request({ destination: `127.0.0.1:${wrongName.port}`, method: 'GET', path: '/_matrix/key/v2/server', signed: false })).rejects.toMatchObject({ reason: 'tls' });
    // …and accepts the first once its CA is trusted.
    await expect(clientWith({ cas: [ca, otherCa] }).request({ destination: `127.0.0.1:${untrusted.port}`, method: 'GET', path: '/_matrix/key/v2/server', signed: false })).resolves.toEqual({});
  });

  it('refuses blocked addresses: an IP literal, and a DNS name that resolves to one (checked after DNS)', async () => {
    const client = clientWith({ allowlist: [] });
    const before = server.requests.length;
    await expect(client.request({ destination: `127.0.0.1:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/echo' })).rejects.toMatchObject({ reason: 'blocked' });
    await expect(client.request({ destination: `localhost:${server.port}`, method: 'GET', path: '/_matrix/federation/v1/echo' })).rejects.toMatchObject({ reason: 'blocked' });
    expect(server.requests.length).toBe(before);
  });

  it('reports a refused connection and an unknown host', async () => {
    const closed = createNetServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    await expect(clientWith().request({ destination: `127.0.0.1:${port}`, method: 'GET', path: '/_matrix/federation/v1/echo' })).rejects.toMatchObject({ reason: 'connect' });
    await expect(clientWith().request({ destination: 'no-such-host.invalid:8448', method: 'GET', path: '/_matrix/federation/v1/echo' })).rejects.toMatchObject({ reason: 'resolve' });
  });
});

describe('requestTarget', () => {
  it('percent-encodes keys and values and repeats arrays', () => {
    expect(requestTarget('/_matrix/x', undefined)).toBe('/_matrix/x');
    expect(requestTarget('/_matrix/x', { a: 'b&c=d', limit: 10, flag: true, v: ['$1', '$2'] })).toBe('/_matrix/x?a=b%26c%3Dd&limit=10&flag=true&v=%241&v=%242');
    expect(requestTarget('/_matrix/x', {})).toBe('/_matrix/x');
  });
});
