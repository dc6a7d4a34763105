/**
 * One client request in cluster mode is one trace across processes: the
 * deactivation request enters client-api over HTTP, which asks room-server
 * over NATS to make the user leave their rooms. Both services export spans to
 * an OTLP receiver; the spans must share one trace ID and link parent to child.
 * Also: /metrics and /ready on every service, and no secret in the logs.
 */
import { startOtlpReceiver } from '@atrium/test-servers';
import { startClusterServer, CLUSTER_APPS, type TestServer } from '../support/servers';
import { client, registerUser, uniqueName } from '../support/clients';

describe('telemetry (cluster mode)', () => {
  let receiver: Awaited<ReturnType<typeof startOtlpReceiver>>;
  let server: TestServer;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    server = await startClusterServer({ otlpEndpoint: receiver.url, env: { ATRIUM_TELEMETRY__LOG_LEVEL: 'info' } });
  });

  afterAll(async () => {
    await server?.stop();
    await receiver?.stop();
  });

  it('traces a deactivation from client-api through NATS to room-server', async () => {
    const password = 'trace-password-1';
    const username = uniqueName('trace');
    const registered = await registerUser(server.baseUrl, username, password);
    const sdk = client(server.baseUrl, { userId: registered.user_id, accessToken: registered.access_token! });
    await sdk.deactivateAccount({ type: 'm.login.password', identifier: { type: 'm.id.user', user: registered.user_id }, password } as never);

    const spans = await receiver.waitFor((all) => {
      const http = all.find((s) => s.serviceName === 'client-api' && s.attributes['url.path'] === '/_matrix/client/v3/account/deactivate' && s.attributes['http.response.status_code'] === 200);
      return http !== undefined && all.some((s) => s.traceId === http.traceId && s.serviceName === 'room-server');
    }, 20_000);

    const root = spans.find((s) => s.serviceName === 'client-api' && s.attributes['url.path'] === '/_matrix/client/v3/account/deactivate' && s.attributes['http.response.status_code'] === 200)!;
    const trace = spans.filter((s) => s.traceId === root.traceId);
    const handler = trace.find((s) => s.serviceName === 'room-server')!;
    expect(handler).toBeDefined();
    // room-server's span descends from client-api's: follow parents up to the HTTP span.
    const byId = new Map(trace.map((s) => [s.spanId, s]));
    let cursor: typeof handler | undefined = handler;
    const services: string[] = [];
    while (cursor) {
      services.push(cursor.serviceName);
      if (cursor.spanId === root.spanId) break;
      cursor = cursor.parentSpanId ? byId.get(cursor.parentSpanId) : undefined;
    }
    expect(cursor?.spanId).toBe(root.spanId);
    expect(services[0]).toBe('room-server');
    expect(services).toContain('client-api');
  });

  it('serves /health, /ready and Prometheus /metrics on every service', async () => {
    for (const app of CLUSTER_APPS) {
      const url = server.services[app];
      expect((await fetch(`${url}/health`)).status).toBe(200);
      const ready = await fetch(`${url}/ready`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ storage: true, bus: true, cache: true });
      const metrics = await fetch(`${url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.headers.get('content-type')).toContain('text/plain');
      expect(await metrics.text()).toContain('atrium_');
    }
  });

  it('logs requests as JSON lines with trace IDs and never logs tokens or passwords', async () => {
    const password = 'never-log-this-password';
    const registered = await registerUser(server.baseUrl, uniqueName('logs'), password);
    await fetch(`${server.baseUrl}/_matrix/client/v3/account/whoami?access_token=${registered.access_token}`);
    await new Promise((r) => setTimeout(r, 300));
    const clientApi = server.processes.find((p) => p.name === 'client-api')!;
    const lines = clientApi.output().split('\n').filter((l) => l.startsWith('{'));
    const requestLines = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => typeof l.trace_id === 'string' && l.route !== undefined);
    expect(requestLines.length).toBeGreaterThan(0);
    const all = clientApi.output();
    expect(all).not.toContain(password);
    expect(all).not.toContain(registered.access_token!);
  });
});
