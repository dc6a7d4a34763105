// PENDING: rename to traced-bus.spec.ts once @atrium/bus exports InProcessBus (the bus adapters had not landed when this was written).
// It type-checks against the port; run with: node scripts/test.mjs libs/telemetry/src/traced-bus
import Fastify, { type FastifyInstance } from 'fastify';
import { BusRemoteError, InProcessBus, type Bus, type BusMessage } from '@atrium/bus';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../../../tools/test-servers/otlp-receiver';
import { registerHttpTelemetry } from './http';
import { currentSpanId, currentTraceId } from './spans';
import { initTelemetry, type Telemetry } from './telemetry';
import { tracedBus } from './traced-bus';

/** Follows parent links from `span` up to the root of its trace. */
function ancestry(span: ReceivedSpan, all: ReceivedSpan[]): ReceivedSpan[] {
  const byId = new Map(all.filter((s) => s.traceId === span.traceId).map((s) => [s.spanId, s]));
  const chain: ReceivedSpan[] = [];
  let cursor: ReceivedSpan | undefined = span;
  for (let i = 0; cursor && i < 20; i++) {
    chain.push(cursor);
    cursor = cursor.parentSpanId ? byId.get(cursor.parentSpanId) : undefined;
  }
  return chain;
}

describe('tracedBus over InProcessBus', () => {
  let receiver: OtlpReceiver;
  let telemetry: Telemetry;
  let inner: Bus;
  /** client-api's view of the bus. */
  let clientBus: Bus;
  /** room-server's view of the same bus (one process, as in the embedded mode). */
  let roomBus: Bus;
  let server: FastifyInstance;
  let baseUrl: string;
  const handled: Array<BusMessage<{ userId: string }> & { traceId?: string; spanId?: string }> = [];

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    telemetry = initTelemetry({ serviceName: 'atrium', otlpEndpoint: receiver.url, logLevel: 'silent', exportDelayMs: 50 });
    inner = new InProcessBus();
    clientBus = tracedBus(inner, telemetry, 'client-api');
    roomBus = tracedBus(inner, telemetry, 'room-server');

    await roomBus.handle<{ userId: string }, { left: number }>('room.leave_all', async (message) => {
      handled.push({ ...message, traceId: currentTraceId(), spanId: currentSpanId() });
      await new Promise((resolve) => setTimeout(resolve, 2));
      // Work the handler does is part of the same trace.
      await telemetry.withSpan('leave rooms', { service: 'room-server' }, async () => undefined);
      if (message.data.userId === '@broken:example.org') throw new BusRemoteError('no such user', 'M_NOT_FOUND');
      return { left: 3 };
    });

    server = Fastify({ logger: false });
    registerHttpTelemetry(server, telemetry, { serviceName: 'client-api' });
    server.post('/_matrix/client/v3/account/deactivate', async (request, reply) => {
      const { user } = request.body as { user: string };
      try {
        const result = await clientBus.request<{ userId: string }, { left: number }>('room.leave_all', { userId: user });
        return { ...result, traceId: currentTraceId(), spanId: currentSpanId() };
      } catch (error) {
        if (error instanceof BusRemoteError) {
          await reply.status(404).send({ errcode: error.code, error: error.message });
          return reply;
        }
        throw error;
      }
    });
    baseUrl = await server.listen({ port: 0, host: '127.0.0.1' });
  });

  afterAll(async () => {
    await server?.close();
    await inner?.close();
    await telemetry?.shutdown();
    await receiver?.stop();
  });

  it('makes an HTTP request and the bus request it causes one trace', async () => {
    const response = await fetch(`${baseUrl}/_matrix/client/v3/account/deactivate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: '@alice:example.org' }),
    });
    expect(response.status).toBe(200);
    const answer = (await response.json()) as { left: number; traceId: string; spanId: string };
    expect(answer.left).toBe(3);
    await telemetry.flush();
    const spans = await receiver.waitFor(
      (all) => all.filter((s) => s.traceId === answer.traceId).length >= 4,
      10_000,
    );
    const trace = spans.filter((s) => s.traceId === answer.traceId);
    const http = trace.find((s) => s.kindName === 'SERVER' && s.attributes['http.route'] === '/_matrix/client/v3/account/deactivate')!;
    const client = trace.find((s) => s.kindName === 'CLIENT')!;
    const handler = trace.find((s) => s.kindName === 'SERVER' && s.attributes['messaging.destination.name'] === 'room.leave_all')!;
    const work = trace.find((s) => s.name === 'leave rooms')!;

    expect(http.spanId).toBe(answer.spanId);
    expect(http.parentSpanId).toBeUndefined();
    expect(client.parentSpanId).toBe(http.spanId);
    expect(handler.parentSpanId).toBe(client.spanId);
    expect(work.parentSpanId).toBe(handler.spanId);
    expect(ancestry(work, spans).map((s) => s.spanId)).toEqual([work.spanId, handler.spanId, client.spanId, http.spanId]);

    expect(client.name).toBe('send room.leave_all');
    expect(client.attributes).toMatchObject({
      'messaging.system': 'inprocess',
      'messaging.destination.name': 'room.leave_all',
      'messaging.operation.name': 'send',
      'atrium.service': 'client-api',
    });
    expect(handler.name).toBe('process room.leave_all');
    expect(handler.attributes).toMatchObject({ 'messaging.system': 'inprocess', 'atrium.service': 'room-server' });
    expect(http.attributes['atrium.service']).toBe('client-api');
    for (const span of [http, client, handler, work]) expect(span.serviceName).toBe('atrium');

    // The handler ran inside its SERVER span and got the trace context in the headers.
    const message = handled.find((m) => m.data.userId === '@alice:example.org')!;
    expect(message.traceId).toBe(answer.traceId);
    expect(message.spanId).toBe(handler.spanId);
    expect(message.headers.traceparent).toBe(`00-${answer.traceId}-${client.spanId}-01`);
  });

  it('records a handler error on both sides and the caller still gets the remote error', async () => {
    const response = await fetch(`${baseUrl}/_matrix/client/v3/account/deactivate`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: '@broken:example.org' }),
    });
    expect(response.status).toBe(404);
    expect(await response.json()).toMatchObject({ errcode: 'M_NOT_FOUND' });
    await telemetry.flush();
    const isHandler = (s: ReceivedSpan): boolean => s.kindName === 'SERVER' && s.attributes['messaging.destination.name'] === 'room.leave_all' && s.statusCode === 2;
    const spans = await receiver.waitFor((all) => all.some(isHandler) && all.some((s) => s.attributes['matrix.errcode'] === 'M_NOT_FOUND'), 10_000);
    const handler = spans.find(isHandler)!;
    const client = spans.find((s) => s.spanId === handler.parentSpanId)!;
    const http = spans.find((s) => s.spanId === client.parentSpanId)!;
    expect(handler.attributes['error.type']).toBe('M_NOT_FOUND');
    expect(handler.statusMessage).toBe('no such user');
    expect(client.kindName).toBe('CLIENT');
    expect(client.statusCode).toBe(2);
    expect(http.attributes).toMatchObject({ 'matrix.errcode': 'M_NOT_FOUND', 'http.response.status_code': 404 });
  });

  it('continues the trace from a publish to the stream consumer', async () => {
    await roomBus.ensureStream({ name: 'TRACE_TEST', subjects: ['trace.events.>'] });
    const consumed: Array<{ traceId?: string; spanId?: string; sequence: number }> = [];
    const subscription = await roomBus.consume<{ n: number }>('TRACE_TEST', { durable: 'trace-consumer' }, async (message) => {
      consumed.push({ traceId: currentTraceId(), spanId: currentSpanId(), sequence: message.sequence });
    });
    try {
      const callerHeaders = { 'x-atrium-origin': 'example.org' };
      const { traceId, sequence } = await telemetry.withSpan('federation transaction', {}, async () => ({
        traceId: currentTraceId(),
        sequence: await clientBus.publish('trace.events.room1', { n: 1 }, callerHeaders),
      }));
      expect(callerHeaders).toEqual({ 'x-atrium-origin': 'example.org' }); // not mutated
      await telemetry.flush();
      const spans = await receiver.waitFor((all) => all.some((s) => s.traceId === traceId && s.kindName === 'CONSUMER'), 10_000);
      const transaction = spans.find((s) => s.traceId === traceId && s.name === 'federation transaction')!;
      const producer = spans.find((s) => s.traceId === traceId && s.kindName === 'PRODUCER')!;
      const consumer = spans.find((s) => s.traceId === traceId && s.kindName === 'CONSUMER')!;
      expect(producer.parentSpanId).toBe(transaction.spanId);
      expect(producer.name).toBe('publish trace.events.room1');
      expect(producer.attributes['atrium.bus.sequence']).toBe(sequence);
      expect(consumer.parentSpanId).toBe(producer.spanId);
      expect(consumer.attributes).toMatchObject({
        'messaging.destination.name': 'trace.events.room1',
        'messaging.consumer.group.name': 'trace-consumer',
        'messaging.destination.subscription.name': 'TRACE_TEST',
        'atrium.bus.sequence': sequence,
        'atrium.bus.delivery_count': 1,
      });
      expect(consumed).toEqual([{ traceId, spanId: consumer.spanId, sequence }]);
    } finally {
      await subscription.unsubscribe();
    }
  });

  it('continues the trace from a notify to every subscriber', async () => {
    const seen: Array<string | undefined> = [];
    const first = await roomBus.subscribe<string>('sync.wake.trace', () => void seen.push(currentTraceId()));
    const second = await roomBus.subscribe<string>('sync.wake.trace', async () => {
      await Promise.resolve();
      seen.push(currentTraceId());
    });
    try {
      const traceId = await telemetry.withSpan('send event', {}, async () => {
        await clientBus.notify('sync.wake.trace', '@alice:example.org');
        return currentTraceId();
      });
      await telemetry.flush();
      const spans = await receiver.waitFor((all) => all.filter((s) => s.traceId === traceId && s.kindName === 'CONSUMER').length === 2, 10_000);
      const producer = spans.find((s) => s.traceId === traceId && s.kindName === 'PRODUCER')!;
      const consumers = spans.filter((s) => s.traceId === traceId && s.kindName === 'CONSUMER');
      expect(consumers.map((s) => s.parentSpanId)).toEqual([producer.spanId, producer.spanId]);
      expect(seen).toEqual([traceId, traceId]);
    } finally {
      await first.unsubscribe();
      await second.unsubscribe();
    }
  });
});
