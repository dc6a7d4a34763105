/**
 * Server name resolution (server-server-api "Resolving server names"): the
 * order of the steps with an injected well-known fetcher and SRV lookup, then
 * the real HTTPS well-known fetch against servers on loopback.
 *
 * The order of steps uses an injected SRV lookup; dnsSrvLookup itself is
 * tested against a small DNS server on loopback (testing/dns-server.ts), and
 * the whole resolver with it.
 */
import type { SrvRecord } from 'node:dns';
import { readFileSync } from 'node:fs';
import { createTestCa, type TestCa } from '@atrium/test-servers';
import { FederationUnreachableError } from './api';
import { IpRangeFilter } from './ip-ranges';
import { startDnsServer } from './testing/dns-server';
import {
  dnsSrvLookup,
  httpsWellKnownFetcher,
  orderSrv,
  ServerNameResolver,
  SRV_CACHE_MS,
  wellKnownCacheMs,
  WELL_KNOWN_DEFAULT_CACHE_MS,
  WELL_KNOWN_ERROR_CACHE_MS,
  WELL_KNOWN_MAX_CACHE_MS,
  WELL_KNOWN_STALE_RETRY_MS,
  type WellKnownResult,
} from './resolver';
import { HttpsTransport } from './transport';
import { sendJson, startHttps, type RunningHttps } from './testing/https-server';

function srv(name: string, port: number, priority = 10, weight = 0): SrvRecord {
  return { name, port, priority, weight };
}

function resolverWith(wellKnown: Record<string, WellKnownResult>, srvRecords: Record<string, SrvRecord[]> = {}, clock = { now: 0 }) {
  const wellKnownCalls: string[] = [];
  const srvCalls: string[] = [];
  const resolver = new ServerNameResolver({
    fetchWellKnown: async (host) => {
      wellKnownCalls.push(host);
      return wellKnown[host] ?? { ok: false, error: 'status 404', cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
    },
    lookupSrv: async (name) => {
      srvCalls.push(name);
      return srvRecords[name] ?? [];
    },
    now: () => clock.now,
  });
  return { resolver, wellKnownCalls, srvCalls };
}

const wk = (server: string, cacheMs = WELL_KNOWN_DEFAULT_CACHE_MS): WellKnownResult => ({ ok: true, server, cacheMs });

describe('ServerNameResolver: the steps in order', () => {
  it('step 1: an IP literal with or without port; Host is the server name, the certificate is for the IP', async () => {
    const { resolver, wellKnownCalls, srvCalls } = resolverWith({});
    expect(await resolver.resolve('1.2.3.4')).toEqual([{ host: '1.2.3.4', port: 8448, hostHeader: '1.2.3.4', tlsServerName: '1.2.3.4' }]);
    expect(await resolver.resolve('1.2.3.4:99')).toEqual([{ host: '1.2.3.4', port: 99, hostHeader: '1.2.3.4:99', tlsServerName: '1.2.3.4' }]);
    expect(await resolver.resolve('[2001:db8::1]:99')).toEqual([{ host: '2001:db8::1', port: 99, hostHeader: '[2001:db8::1]:99', tlsServerName: '2001:db8::1' }]);
    expect(wellKnownCalls).toEqual([]);
    expect(srvCalls).toEqual([]);
  });

  it('step 2: a hostname with an explicit port, no well-known', async () => {
    const { resolver, wellKnownCalls } = resolverWith({ 'example.org': wk('other.example:1') });
    expect(await resolver.resolve('example.org:8449')).toEqual([{ host: 'example.org', port: 8449, hostHeader: 'example.org:8449', tlsServerName: 'example.org' }]);
    expect(wellKnownCalls).toEqual([]);
  });

  it('3.1: delegation to an IP literal: Host is the IP (with port)', async () => {
    const { resolver } = resolverWith({ 'example.org': wk('5.6.7.8:444'), 'b.example': wk('[2001:db8::2]') });
    expect(await resolver.resolve('example.org')).toEqual([{ host: '5.6.7.8', port: 444, hostHeader: '5.6.7.8:444', tlsServerName: '5.6.7.8' }]);
    expect(await resolver.resolve('b.example')).toEqual([{ host: '2001:db8::2', port: 8448, hostHeader: '[2001:db8::2]', tlsServerName: '2001:db8::2' }]);
  });

  it('3.2: delegation to a hostname with port, no SRV', async () => {
    const { resolver, srvCalls } = resolverWith({ 'example.org': wk('matrix.example.org:443') });
    expect(await resolver.resolve('example.org')).toEqual([{ host: 'matrix.example.org', port: 443, hostHeader: 'matrix.example.org:443', tlsServerName: 'matrix.example.org' }]);
    expect(srvCalls).toEqual([]);
  });

  it('3.3: delegation without port: _matrix-fed._tcp of the delegated name; Host and certificate are the delegated name', async () => {
    const { resolver, srvCalls } = resolverWith(
      { 'example.org': wk('matrix.example.org') },
      { '_matrix-fed._tcp.matrix.example.org': [srv('fed1.example.net.', 8000)], '_matrix._tcp.matrix.example.org': [srv('old.example.net', 1)] },
    );
    expect(await resolver.resolve('example.org')).toEqual([{ host: 'fed1.example.net', port: 8000, hostHeader: 'matrix.example.org', tlsServerName: 'matrix.example.org' }]);
    expect(srvCalls).toEqual(['_matrix-fed._tcp.matrix.example.org']);
  });

  it('3.4: then the deprecated _matrix._tcp; 3.5: then the delegated name on 8448', async () => {
    const { resolver, srvCalls } = resolverWith({ 'example.org': wk('matrix.example.org'), 'c.example': wk('d.example') }, { '_matrix._tcp.matrix.example.org': [srv('old.example.net', 1)] });
    expect(await resolver.resolve('example.org')).toEqual([{ host: 'old.example.net', port: 1, hostHeader: 'matrix.example.org', tlsServerName: 'matrix.example.org' }]);
    expect(await resolver.resolve('c.example')).toEqual([{ host: 'd.example', port: 8448, hostHeader: 'd.example', tlsServerName: 'd.example' }]);
    expect(srvCalls).toEqual(['_matrix-fed._tcp.matrix.example.org', '_matrix._tcp.matrix.example.org', '_matrix-fed._tcp.d.example', '_matrix._tcp.d.example']);
  });

  it('steps 4-6: well-known error: SRV of the server name (new, then deprecated), then 8448; Host and certificate stay the server name', async () => {
    const { resolver } = resolverWith({}, { '_matrix-fed._tcp.a.example': [srv('x.example.net', 1234)], '_matrix._tcp.b.example': [srv('y.example.net', 5678)] });
    expect(await resolver.resolve('a.example')).toEqual([{ host: 'x.example.net', port: 1234, hostHeader: 'a.example', tlsServerName: 'a.example' }]);
    expect(await resolver.resolve('b.example')).toEqual([{ host: 'y.example.net', port: 5678, hostHeader: 'b.example', tlsServerName: 'b.example' }]);
    expect(await resolver.resolve('c.example')).toEqual([{ host: 'c.example', port: 8448, hostHeader: 'c.example', tlsServerName: 'c.example' }]);
  });

  it('refuses what is not a server name', async () => {
    const { resolver } = resolverWith({});
    await expect(resolver.resolve('not a name')).rejects.toBeInstanceOf(FederationUnreachableError);
    await expect(resolver.resolve('a.example:99999')).rejects.toMatchObject({ reason: 'resolve' });
  });
});

describe('SRV caching', () => {
  it('reuses an SRV answer (or its absence) for SRV_CACHE_MS', async () => {
    const clock = { now: 0 };
    const { resolver, srvCalls } = resolverWith({}, { '_matrix-fed._tcp.a.example': [srv('x.example.net', 1)] }, clock);
    await resolver.resolve('a.example');
    await resolver.resolve('b.example');
    expect(srvCalls).toEqual(['_matrix-fed._tcp.a.example', '_matrix-fed._tcp.b.example', '_matrix._tcp.b.example']);
    clock.now = SRV_CACHE_MS - 1;
    await resolver.resolve('a.example');
    await resolver.resolve('b.example');
    expect(srvCalls).toHaveLength(3);
    clock.now = SRV_CACHE_MS + 1;
    // The well-known error (cached 1 h) is asked again too, as it expired.
    await resolver.resolve('a.example');
    expect(srvCalls).toHaveLength(4);
  });
});

describe('SRV ordering (RFC 2782)', () => {
  it('orders by priority, skips ".", and weighs within a priority', () => {
    const records = [srv('b', 2, 20, 0), srv('a', 1, 10, 0), srv('.', 3, 5, 0), srv('c', 3, 20, 100)];
    // random() = 0 picks the first record with weight in the pool.
    expect(orderSrv(records, () => 0).map((r) => r.name)).toEqual(['a', 'c', 'b']);
    expect(orderSrv([srv('x', 1, 1, 1), srv('y', 1, 1, 3)], () => 0.9).map((r) => r.name)).toEqual(['y', 'x']);
  });
});

describe('well-known caching (step 3)', () => {
  it('parses Cache-Control: 24 h default, max-age capped at 48 h, no-store not cached', () => {
    expect(wellKnownCacheMs(undefined)).toBe(WELL_KNOWN_DEFAULT_CACHE_MS);
    expect(wellKnownCacheMs('public, max-age=600')).toBe(600_000);
    expect(wellKnownCacheMs('max-age=999999999')).toBe(WELL_KNOWN_MAX_CACHE_MS);
    expect(wellKnownCacheMs('no-store')).toBe(0);
    expect(wellKnownCacheMs('private')).toBe(WELL_KNOWN_DEFAULT_CACHE_MS);
  });

  it('keeps an answer for its cache time, an error for an hour, then asks again; concurrent asks share one fetch', async () => {
    const clock = { now: 0 };
    const answers: Record<string, WellKnownResult> = { 'a.example': wk('deleg.example:1', 600_000) };
    const { resolver, wellKnownCalls } = resolverWith(answers, {}, clock);
    await Promise.all([resolver.resolve('a.example'), resolver.resolve('a.example'), resolver.resolve('a.example')]);
    expect(wellKnownCalls).toEqual(['a.example']);
    clock.now = 599_999;
    await resolver.resolve('a.example');
    expect(wellKnownCalls).toHaveLength(1);
    clock.now = 600_001;
    answers['a.example'] = { ok: false, error: 'status 500', cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
    expect(await resolver.resolve('a.example')).toEqual([{ host: 'a.example', port: 8448, hostHeader: 'a.example', tlsServerName: 'a.example' }]);
    expect(wellKnownCalls).toHaveLength(2);
    clock.now += WELL_KNOWN_ERROR_CACHE_MS - 1;
    await resolver.resolve('a.example');
    expect(wellKnownCalls).toHaveLength(2);
    clock.now += 2;
    answers['a.example'] = wk('back.example:2');
    expect(await resolver.resolve('a.example')).toEqual([{ host: 'back.example', port: 2, hostHeader: 'back.example:2', tlsServerName: 'back.example' }]);
    expect(wellKnownCalls).toHaveLength(3);
  });
});

describe('a failed well-known refresh', () => {
  it('keeps the last delegation for 10 min on a transient failure, and drops it on a definite one', async () => {
    const clock = { now: 0 };
    const answers: Record<string, WellKnownResult> = { 'a.example': wk('deleg.example:1', 1000) };
    const { resolver, wellKnownCalls } = resolverWith(answers, {}, clock);
    const delegated = [{ host: 'deleg.example', port: 1, hostHeader: 'deleg.example:1', tlsServerName: 'deleg.example' }];
    expect(await resolver.resolve('a.example')).toEqual(delegated);
    clock.now = 2000;
    answers['a.example'] = { ok: false, error: 'connect: ECONNREFUSED', cacheMs: WELL_KNOWN_ERROR_CACHE_MS, transient: true };
    expect(await resolver.resolve('a.example')).toEqual(delegated);
    clock.now += WELL_KNOWN_STALE_RETRY_MS - 1;
    await resolver.resolve('a.example');
    expect(wellKnownCalls).toHaveLength(2);
    clock.now += 2;
    answers['a.example'] = { ok: false, error: 'status 404', cacheMs: WELL_KNOWN_ERROR_CACHE_MS };
    expect(await resolver.resolve('a.example')).toEqual([{ host: 'a.example', port: 8448, hostHeader: 'a.example', tlsServerName: 'a.example' }]);
    expect(wellKnownCalls).toHaveLength(3);
  });

  it('does not revive a delegation that expired more than 48 h ago', async () => {
    const clock = { now: 0 };
    const answers: Record<string, WellKnownResult> = { 'a.example': wk('deleg.example:1', 1000) };
    const { resolver } = resolverWith(answers, {}, clock);
    await resolver.resolve('a.example');
    clock.now = 1000 + WELL_KNOWN_MAX_CACHE_MS + 1;
    answers['a.example'] = { ok: false, error: 'timeout', cacheMs: WELL_KNOWN_ERROR_CACHE_MS, transient: true };
    expect(await resolver.resolve('a.example')).toEqual([{ host: 'a.example', port: 8448, hostHeader: 'a.example', tlsServerName: 'a.example' }]);
  });
});

describe('httpsWellKnownFetcher over real TLS (loopback, name "localhost")', () => {
  let ca: TestCa;
  let transport: HttpsTransport;
  let server: RunningHttps;
  let routes: Record<string, (res: import('node:http').ServerResponse) => void>;

  beforeAll(async () => {
    ca = createTestCa();
    transport = new HttpsTransport({ extraCaPems: [readFileSync(ca.certPath, 'utf8')], ipFilter: new IpRangeFilter(['127.0.0.0/8', '::1/128'], ['127.0.0.1/32', '::1/128']) });
    server = await startHttps(ca.issue(['localhost']), (req, res) => {
      const route = routes[req.url];
      if (route) route(res);
      else sendJson(res, 404, { errcode: 'M_NOT_FOUND', error: 'no' });
    });
  });
  afterAll(async () => {
    transport.close();
    await server.close();
  });

  it('reads m.server and the cache time', async () => {
    routes = { '/.well-known/matrix/server': (res) => sendJson(res, 200, { 'm.server': 'matrix.example.org:443' }, { 'Cache-Control': 'max-age=3600' }) };
    expect(await httpsWellKnownFetcher(transport, server.port)('localhost')).toEqual({ ok: true, server: 'matrix.example.org:443', cacheMs: 3_600_000 });
    expect(server.requests.at(-1)?.headers.host).toBe(`localhost:${server.port}`);
  });

  it('follows redirects, and stops on a loop', async () => {
    routes = {
      '/.well-known/matrix/server': (res) => {
        res.writeHead(302, { Location: '/elsewhere' });
        res.end();
      },
      '/elsewhere': (res) => sendJson(res, 200, { 'm.server': 'deleg.example' }),
    };
    expect(await httpsWellKnownFetcher(transport, server.port)('localhost')).toMatchObject({ ok: true, server: 'deleg.example' });
    routes['/elsewhere'] = (res) => {
      res.writeHead(301, { Location: '/.well-known/matrix/server' });
      res.end();
    };
    expect(await httpsWellKnownFetcher(transport, server.port)('localhost')).toMatchObject({ ok: false, error: 'redirect loop', cacheMs: WELL_KNOWN_ERROR_CACHE_MS });
  });

  it.each([
    ['a 404', (res: import('node:http').ServerResponse) => sendJson(res, 404, {}), false],
    ['a 503', (res: import('node:http').ServerResponse) => sendJson(res, 503, {}), true],
    ['bad JSON', (res: import('node:http').ServerResponse) => sendJson(res, 200, '{nope'), false],
    ['no m.server', (res: import('node:http').ServerResponse) => sendJson(res, 200, { 'm.homeserver': 'x' }), false],
    ['an invalid m.server', (res: import('node:http').ServerResponse) => sendJson(res, 200, { 'm.server': 'bad name:port' }), false],
  ])('treats %s as an error cached for an hour (transient: %s)', async (_what, route, transient) => {
    routes = { '/.well-known/matrix/server': route };
    const result = await httpsWellKnownFetcher(transport, server.port)('localhost');
    expect(result).toMatchObject({ ok: false, cacheMs: WELL_KNOWN_ERROR_CACHE_MS });
    expect(!result.ok && result.transient === true).toBe(transient);
  });

  it('fails on a certificate for another name', async () => {
    routes = { '/.well-known/matrix/server': (res) => sendJson(res, 200, { 'm.server': 'x.example' }) };
    // 127.0.0.1 is not in the certificate (issued for "localhost" only).
    expect(await httpsWellKnownFetcher(transport, server.port)('127.0.0.1')).toMatchObject({ ok: false, error: expect.stringMatching(/^tls/), transient: true });
  });
});

describe('SRV through node:dns against a DNS server on loopback', () => {
  it('reads SRV records, treats NXDOMAIN as none, and the resolver takes _matrix-fed._tcp, then _matrix._tcp, then 8448', async () => {
    const dnsServer = await startDnsServer({
      '_matrix-fed._tcp.fed.example': [
        { priority: 10, weight: 0, port: 8443, target: 'b.host.example' },
        { priority: 5, weight: 0, port: 443, target: 'a.host.example' },
      ],
      '_matrix._tcp.old.example': [{ priority: 1, weight: 1, port: 9000, target: 'legacy.host.example' }],
    });
    try {
      const lookup = dnsSrvLookup([dnsServer.address]);
      expect((await lookup('_matrix-fed._tcp.fed.example')).sort((x, y) => x.priority - y.priority)).toEqual([
        expect.objectContaining({ name: 'a.host.example', port: 443, priority: 5, weight: 0 }),
        expect.objectContaining({ name: 'b.host.example', port: 8443, priority: 10, weight: 0 }),
      ]);
      expect(await lookup('_matrix-fed._tcp.none.example')).toEqual([]);
      const resolver = new ServerNameResolver({ fetchWellKnown: async () => ({ ok: false, error: 'status 404', cacheMs: WELL_KNOWN_ERROR_CACHE_MS }), lookupSrv: lookup });
      expect(await resolver.resolve('fed.example')).toEqual([
        { host: 'a.host.example', port: 443, hostHeader: 'fed.example', tlsServerName: 'fed.example' },
        { host: 'b.host.example', port: 8443, hostHeader: 'fed.example', tlsServerName: 'fed.example' },
      ]);
      expect(await resolver.resolve('old.example')).toEqual([{ host: 'legacy.host.example', port: 9000, hostHeader: 'old.example', tlsServerName: 'old.example' }]);
      expect(await resolver.resolve('plain.example')).toEqual([{ host: 'plain.example', port: 8448, hostHeader: 'plain.example', tlsServerName: 'plain.example' }]);
      expect(dnsServer.queries).toEqual(expect.arrayContaining(['_matrix-fed._tcp.old.example', '_matrix._tcp.old.example', '_matrix-fed._tcp.plain.example', '_matrix._tcp.plain.example']));
      expect(dnsServer.queries).not.toContain('_matrix._tcp.fed.example');
    } finally {
      await dnsServer.close();
    }
  });
});
