/**
 * The X-Matrix guard in a real Nest app (Fastify, platform on SQLite in
 * memory), with the origin's keys fetched over TLS from a real HTTPS server on
 * loopback. Spec: server-server-api "Request Authentication".
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import { Body, Controller, Get, Module, Put } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { buildConfig } from '@atrium/config';
import { FederationClientModule } from '@atrium/federation-client';
import { buildServerKeys, generateSigningKey, serialiseSigningKeyFile, signRequest, type JsonObject, type SigningKey } from '@atrium/matrix';
import { createHttpApp, openPlatform, type Platform } from '@atrium/platform';
import { createTestCa } from '@atrium/test-servers';
import { FederationInboundModule } from '../federation-inbound.module';
import { FederationOrigin } from '../origin';

@Controller('_matrix/federation/v1/guard-test')
class OriginEchoController {
  @Get('origin')
  origin(@FederationOrigin() origin: string): { origin: string } {
    return { origin };
  }

  @Put('echo')
  echo(@FederationOrigin() origin: string, @Body() body: unknown): { origin: string; body: unknown } {
    return { origin, body };
  }
}

@Module({ controllers: [OriginEchoController] })
class OriginEchoModule {}

const OUR_NAME = 'inbound.test';

describe('XMatrixGuard', () => {
  let platform: Platform;
  let app: NestFastifyApplication;
  let base: string;
  let remote: Server;
  let remoteName: string;
  let keyFetches = 0;
  const remoteKey: SigningKey = generateSigningKey();

  beforeAll(async () => {
    const ca = createTestCa();
    const cert = ca.issue(['127.0.0.1']);
    remote = createServer({ cert: readFileSync(cert.certPath), key: readFileSync(cert.keyPath) }, (req, res) => {
      if (req.url === '/_matrix/key/v2/server') {
        keyFetches++;
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify(buildServerKeys({ serverName: remoteName, signingKeys: [remoteKey], validUntilTs: Date.now() + 3600_000 })));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise<void>((resolve) => remote.listen(0, '127.0.0.1', resolve));
    remoteName = `127.0.0.1:${(remote.address() as AddressInfo).port}`;

    const dir = mkdtempSync(join(tmpdir(), 'atrium-guard-'));
    writeFileSync(join(dir, 'signing.key'), serialiseSigningKeyFile([generateSigningKey()]));
    const config = buildConfig(
      [
        `server_name: ${OUR_NAME}`,
        `data_dir: ${dir}`,
        'storage: { url: "sqlite::memory:" }',
        'telemetry: { log_level: silent }',
        'federation:',
        `  trusted_ca_paths: [${ca.certPath}]`,
        '  ip_range_allowlist: [127.0.0.1/32]',
        '',
      ].join('\n'),
    );
    platform = await openPlatform(config, 'guard-test');
    app = await createHttpApp({ platform, modules: [FederationClientModule, FederationInboundModule, OriginEchoModule] });
    await app.listen({ port: 0, host: '127.0.0.1' });
    base = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await app?.close();
    await platform?.close();
    await new Promise<void>((resolve) => remote.close(() => resolve()));
  });

  function header(method: string, uri: string, options: { destination?: string; content?: JsonObject; key?: SigningKey; origin?: string } = {}): string {
    return signRequest({ method, uri, origin: options.origin ?? remoteName, destination: options.destination ?? OUR_NAME, content: options.content }, options.key ?? remoteKey);
  }

  async function call(method: string, uri: string, authorization?: string, body?: JsonObject): Promise<{ status: number; json: Record<string, unknown> }> {
    const res = await fetch(`${base}${uri}`, {
      method,
      headers: { ...(authorization ? { Authorization: authorization } : {}), ...(body ? { 'Content-Type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  }

  it('lets a correctly signed request through and hands its origin to the controller; keys are fetched once', async () => {
    const uri = '/_matrix/federation/v1/guard-test/origin?x=%20y&z=1';
    expect(await call('GET', uri, header('GET', uri))).toEqual({ status: 200, json: { origin: remoteName } });
    expect(await call('GET', uri, header('GET', uri))).toEqual({ status: 200, json: { origin: remoteName } });
    expect(keyFetches).toBe(1);
  });

  it('checks the body as signed', async () => {
    const uri = '/_matrix/federation/v1/guard-test/echo';
    const content = { pdus: [], n: 1, nested: { 'm.relates_to': 'x' } };
    expect(await call('PUT', uri, header('PUT', uri, { content }), content)).toMatchObject({ status: 200, json: { origin: remoteName, body: content } });
    const other = await call('PUT', uri, header('PUT', uri, { content }), { ...content, n: 2 });
    expect(other).toMatchObject({ status: 401, json: { errcode: 'M_UNAUTHORIZED' } });
  });

  it('accepts an old sender without destination', async () => {
    const uri = '/_matrix/federation/v1/guard-test/origin';
    const old = header('GET', uri).replace(`,destination="${OUR_NAME}"`, '');
    expect(old).not.toContain('destination');
    expect(await call('GET', uri, old)).toEqual({ status: 200, json: { origin: remoteName } });
  });

  it.each([
    ['no Authorization header', () => undefined],
    ['another scheme', () => 'Bearer abc'],
    ['a malformed X-Matrix header', () => 'X-Matrix origin="a"'],
    ['a signature over another path', () => header('GET', '/_matrix/federation/v1/guard-test/other')],
    ['a signature by another key', () => header('GET', '/_matrix/federation/v1/guard-test/origin', { key: { ...generateSigningKey(), keyId: remoteKey.keyId } as SigningKey })],
    ['an unknown key ID', () => header('GET', '/_matrix/federation/v1/guard-test/origin', { key: generateSigningKey('unknown') })],
    ['an origin whose keys cannot be had', () => header('GET', '/_matrix/federation/v1/guard-test/origin', { origin: '127.0.0.1:1' })],
    ['an origin that is not a server name', () => header('GET', '/_matrix/federation/v1/guard-test/origin', { origin: 'not a name' })],
  ])('refuses %s with 401 M_UNAUTHORIZED', async (_what, make) => {
    const res = await call('GET', '/_matrix/federation/v1/guard-test/origin', make());
    expect(res).toMatchObject({ status: 401, json: { errcode: 'M_UNAUTHORIZED' } });
  });

  it('refuses a destination that is not us with 401, before fetching any key', async () => {
    const before = keyFetches;
    const uri = '/_matrix/federation/v1/guard-test/origin';
    expect(await call('GET', uri, header('GET', uri, { destination: 'someone-else.test', origin: '127.0.0.1:2' }))).toMatchObject({ status: 401, json: { errcode: 'M_UNAUTHORIZED' } });
    expect(keyFetches).toBe(before);
  });

  it('takes a transaction body beyond the 1 MiB client limit on /send, and refuses it elsewhere with 413 M_TOO_LARGE', async () => {
    // 50 PDUs of up to 64 KiB make a legal transaction of over 3 MiB (server-server-api "Transactions").
    const content = { pdus: [], edus: [], padding: 'x'.repeat(2 * 1024 * 1024) };
    const send = '/_matrix/federation/v1/send/big-txn';
    expect(await call('PUT', send, header('PUT', send, { content }), content)).toEqual({ status: 200, json: { pdus: {} } });
    const echo = '/_matrix/federation/v1/guard-test/echo';
    expect(await call('PUT', echo, header('PUT', echo, { content }), content)).toMatchObject({ status: 413, json: { errcode: 'M_TOO_LARGE' } });
  });

  it('leaves /version and /openid/userinfo unsigned', async () => {
    expect(await call('GET', '/_matrix/federation/v1/version')).toMatchObject({ status: 200, json: { server: { name: 'Atrium' } } });
    // The OpenID route answers with its own token errors, not the guard's.
    expect(await call('GET', '/_matrix/federation/v1/openid/userinfo')).toMatchObject({ status: 401, json: { errcode: 'M_MISSING_TOKEN' } });
  });
});
