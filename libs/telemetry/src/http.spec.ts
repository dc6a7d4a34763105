import { request as httpRequest } from 'node:http';
import Fastify, { type FastifyInstance } from 'fastify';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../../tools/test-servers/otlp-receiver';
import { registerHttpTelemetry } from './http';
import { currentSpanId, currentTraceId, setSpanAttributes } from './spans';
import { initTelemetry, type Telemetry } from './telemetry';

/** Collects the JSON lines pino writes. */
function lineSink(): { write(line: string): void; records(): Array<Record<string, unknown>>; text(): string } {
  const lines: string[] = [];
  return {
    write: (line: string) => void lines.push(line),
    records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => lines.join(''),
  };
}

describe('registerHttpTelemetry', () => {
  let receiver: OtlpReceiver;
  let telemetry: Telemetry;
  let server: FastifyInstance;
  let baseUrl: string;
  const logs = lineSink();

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    telemetry = initTelemetry({ serviceName: 'client-api', otlpEndpoint: receiver.url, logDestination: logs, exportDelayMs: 50 });
    server = Fastify({ logger: false });
    registerHttpTelemetry(server, telemetry, { serviceName: 'client-api' });
    server.get('/_matrix/client/v3/rooms/:roomId/state', async () => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      return { traceId: currentTraceId(), spanId: currentSpanId() };
    });
    server.post('/_matrix/client/v3/rooms/:roomId/send', async (request) => {
      await new Promise((resolve) => setTimeout(resolve, 2));
      setSpanAttributes({ 'matrix.room_id': (request.params as { roomId: string }).roomId });
      return { traceId: currentTraceId(), spanId: currentSpanId(), body: request.body };
    });
    server.get('/_matrix/client/v3/forbidden', async (_request, reply) => {
      await reply.status(403).send({ errcode: 'M_FORBIDDEN', error: 'You are not invited to this room.' });
    });
    server.get('/_matrix/client/v3/crash', async () => {
      throw new Error('handler exploded');
    });
    server.get('/metrics', async (_request, reply) => {
      const { contentType, body } = await telemetry.metricsText();
      await reply.header('content-type', contentType).send(body);
    });
    baseUrl = await server.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await server?.close();
    await telemetry?.shutdown();
    await receiver?.stop();
  });

  async function spanOf(predicate: (span: ReceivedSpan) => boolean): Promise<ReceivedSpan> {
    await telemetry.flush();
    const spans = await receiver.waitFor((all) => all.some(predicate), 10_000);
    return spans.find(predicate)!;
  }

  it('makes a SERVER span per request, active while the handler runs', async () => {
    const response = await fetch(`${baseUrl}/_matrix/client/v3/rooms/!abc:example.org/state?limit=5`);
    expect(response.status).toBe(200);
    const seen = (await response.json()) as { traceId: string; spanId: string };
    const span = await spanOf((s) => s.spanId === seen.spanId);
    expect(span.traceId).toBe(seen.traceId);
    expect(span.parentSpanId).toBeUndefined();
    expect(span.kindName).toBe('SERVER');
    expect(span.name).toBe('GET /_matrix/client/v3/rooms/:roomId/state');
    expect(span.serviceName).toBe('client-api');
    expect(span.attributes).toMatchObject({
      'http.request.method': 'GET',
      'url.path': '/_matrix/client/v3/rooms/!abc:example.org/state',
      'http.route': '/_matrix/client/v3/rooms/:roomId/state',
      'http.response.status_code': 200,
      'atrium.service': 'client-api',
    });
  });

  it('continues the trace of an incoming traceparent header', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const parentId = '00f067aa0ba902b7';
    const response = await fetch(`${baseUrl}/_matrix/client/v3/rooms/!abc:example.org/state`, {
      headers: { traceparent: `00-${traceId}-${parentId}-01`, tracestate: 'vendor=value' },
    });
    const seen = (await response.json()) as { traceId: string; spanId: string };
    expect(seen.traceId).toBe(traceId);
    const span = await spanOf((s) => s.spanId === seen.spanId);
    expect(span.traceId).toBe(traceId);
    expect(span.parentSpanId).toBe(parentId);
  });

  it('keeps the span active in handlers of requests with a body that arrives later', async () => {
    // The body comes in a second write, after the hooks ran: it is read in
    // socket events, outside the context entered when the request began.
    const body = JSON.stringify({ msgtype: 'm.text', body: 'x'.repeat(1000) });
    const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const request = httpRequest(`${baseUrl}/_matrix/client/v3/rooms/!r:example.org/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      });
      request.on('response', (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
      });
      request.on('error', reject);
      request.flushHeaders();
      request.write(body.slice(0, 10));
      setTimeout(() => request.end(body.slice(10)), 50);
    });
    expect(status).toBe(200);
    const seen = JSON.parse(text) as { traceId: string; spanId: string };
    expect(seen.spanId).toMatch(/^[0-9a-f]{16}$/);
    const span = await spanOf((s) => s.spanId === seen.spanId);
    expect(span.name).toBe('POST /_matrix/client/v3/rooms/:roomId/send');
    expect(span.attributes['matrix.room_id']).toBe('!r:example.org');
  });

  it('records the Matrix errcode of error responses', async () => {
    const response = await fetch(`${baseUrl}/_matrix/client/v3/forbidden`);
    expect(response.status).toBe(403);
    const span = await spanOf((s) => s.attributes['url.path'] === '/_matrix/client/v3/forbidden');
    expect(span.attributes['matrix.errcode']).toBe('M_FORBIDDEN');
    expect(span.attributes['http.response.status_code']).toBe(403);
    expect(span.statusCode).toBe(0); // a client error is not the server's failure
    const line = logs.records().find((r) => r.route === '/_matrix/client/v3/forbidden');
    expect(line).toMatchObject({ status: 403, errcode: 'M_FORBIDDEN', trace_id: span.traceId, span_id: span.spanId });
  });

  it('marks a failing handler as an error', async () => {
    const response = await fetch(`${baseUrl}/_matrix/client/v3/crash`);
    expect(response.status).toBe(500);
    const span = await spanOf((s) => s.attributes['url.path'] === '/_matrix/client/v3/crash');
    expect(span.statusCode).toBe(2);
    expect(span.events.some((e) => e.name === 'exception' && e.attributes['exception.message'] === 'handler exploded')).toBe(true);
    expect(logs.records().find((r) => r.route === '/_matrix/client/v3/crash')).toMatchObject({ level: 50, status: 500 });
  });

  it('logs one JSON line per request, without the access token or the Authorization header', async () => {
    const before = logs.records().length;
    const response = await fetch(`${baseUrl}/_matrix/client/v3/rooms/!abc:example.org/state?access_token=secret-query-token&limit=5`, {
      headers: { authorization: 'Bearer secret-header-token' },
    });
    const seen = (await response.json()) as { traceId: string; spanId: string };
    const lines = logs.records().slice(before);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      msg: 'request',
      service: 'client-api',
      method: 'GET',
      route: '/_matrix/client/v3/rooms/:roomId/state',
      path: '/_matrix/client/v3/rooms/!abc:example.org/state?access_token=[Redacted]&limit=5',
      status: 200,
      trace_id: seen.traceId,
      span_id: seen.spanId,
    });
    expect(typeof lines[0].duration_ms).toBe('number');
    expect(logs.text()).not.toContain('secret-query-token');
    expect(logs.text()).not.toContain('secret-header-token');
    const span = await spanOf((s) => s.spanId === seen.spanId);
    expect(JSON.stringify(span)).not.toContain('secret-query-token');
    expect(JSON.stringify(span)).not.toContain('secret-header-token');
  });

  it('observes atrium_http_request_duration_seconds by method, route and status', async () => {
    await fetch(`${baseUrl}/_matrix/client/v3/rooms/!abc:example.org/state`);
    await fetch(`${baseUrl}/no/such/route?access_token=zzz`);
    const response = await fetch(`${baseUrl}/metrics`);
    expect(response.headers.get('content-type')).toContain('text/plain');
    const text = await response.text();
    expect(text).toContain('# TYPE atrium_http_request_duration_seconds histogram');
    expect(text).toMatch(/atrium_http_request_duration_seconds_count\{method="GET",route="\/_matrix\/client\/v3\/rooms\/:roomId\/state",status="200"\} \d+/);
    expect(text).toMatch(/atrium_http_request_duration_seconds_count\{method="GET",route="unmatched",status="404"\} 1/);
    expect(text).toMatch(/atrium_http_request_duration_seconds_count\{method="GET",route="\/_matrix\/client\/v3\/forbidden",status="403"\} 1/);
    expect(text).not.toContain('zzz');
  });
});
