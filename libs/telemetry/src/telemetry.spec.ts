import { context, SpanKind, trace } from '@opentelemetry/api';
import { startOtlpReceiver, type OtlpReceiver } from '../../../tools/test-servers/otlp-receiver';
import { initTelemetry, resolveTracesUrl } from './telemetry';
import { currentSpanId, currentTraceId, setSpanAttributes } from './spans';

describe('resolveTracesUrl', () => {
  it('appends /v1/traces to a base endpoint and honours the OTEL_ variables', () => {
    expect(resolveTracesUrl('http://collector:4318', {})).toBe('http://collector:4318/v1/traces');
    expect(resolveTracesUrl('http://collector:4318/', {})).toBe('http://collector:4318/v1/traces');
    expect(resolveTracesUrl('http://collector:4318/v1/traces', {})).toBe('http://collector:4318/v1/traces');
    expect(resolveTracesUrl(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://env:4318' })).toBe('http://env:4318/v1/traces');
    expect(resolveTracesUrl(undefined, { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://env:4318/custom', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://other:4318' })).toBe('http://env:4318/custom');
    expect(resolveTracesUrl('http://explicit:4318', { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://env:4318/custom' })).toBe('http://explicit:4318/v1/traces');
    expect(resolveTracesUrl(undefined, {})).toBeUndefined();
    expect(resolveTracesUrl('  ', {})).toBeUndefined();
  });
});

describe('initTelemetry', () => {
  let receiver: OtlpReceiver;

  beforeAll(async () => {
    receiver = await startOtlpReceiver();
  });

  afterAll(async () => {
    await receiver.stop();
  });

  it('exports spans over OTLP/HTTP with service.name, nesting them across awaits', async () => {
    const telemetry = initTelemetry({ serviceName: 'room-server', serviceVersion: '1.2.3', otlpEndpoint: receiver.url, logLevel: 'silent' });
    try {
    expect(telemetry.exportUrl).toBe(`${receiver.url}/v1/traces`);
    let outerIds: { traceId: string; spanId: string } | undefined;
    await telemetry.withSpan('outer', { kind: SpanKind.SERVER, attributes: { 'test.key': 'outer' } }, async (outer) => {
      outerIds = outer.spanContext();
      await new Promise((resolve) => setTimeout(resolve, 5));
      expect(currentTraceId()).toBe(outerIds.traceId);
      await telemetry.withSpan('inner', { service: 'room-server/input' }, async () => {
        await Promise.resolve();
        setSpanAttributes({ 'test.count': 7, 'test.flag': true });
        expect(currentSpanId()).not.toBe(outerIds?.spanId);
      });
    });
    await expect(telemetry.withSpan('failing', {}, async () => {
      throw new Error('boom');
    })).rejects.toThrow('boom');
    await telemetry.flush();

    const spans = await receiver.waitFor((all) => ['outer', 'inner', 'failing'].every((name) => all.some((s) => s.name === name)), 10_000);
    const outer = spans.find((s) => s.name === 'outer')!;
    const inner = spans.find((s) => s.name === 'inner')!;
    const failing = spans.find((s) => s.name === 'failing')!;
    expect(outer.traceId).toBe(outerIds?.traceId);
    expect(outer.spanId).toBe(outerIds?.spanId);
    expect(outer.parentSpanId).toBeUndefined();
    expect(outer.kindName).toBe('SERVER');
    expect(outer.serviceName).toBe('room-server');
    expect(outer.resource['service.version']).toBe('1.2.3');
    expect(outer.attributes).toMatchObject({ 'test.key': 'outer', 'atrium.service': 'room-server' });
    expect(inner.traceId).toBe(outer.traceId);
    expect(inner.parentSpanId).toBe(outer.spanId);
    expect(inner.kindName).toBe('INTERNAL');
    expect(inner.attributes).toMatchObject({ 'test.count': 7, 'test.flag': true, 'atrium.service': 'room-server/input' });
    expect(failing.statusCode).toBe(2);
    expect(failing.statusMessage).toBe('boom');
    expect(failing.events.map((e) => e.name)).toContain('exception');
    expect(failing.traceId).not.toBe(outer.traceId);
    } finally {
      await telemetry.shutdown();
    }
  });

  it('is one per process: later calls share it until the last holder shuts down', async () => {
    const first = initTelemetry({ serviceName: 'atrium', otlpEndpoint: receiver.url, logLevel: 'silent' });
    const second = initTelemetry({ serviceName: 'client-api', logLevel: 'silent' });
    expect(second.tracer).toBe(first.tracer);
    expect(second.registry).toBe(first.registry);
    expect(second.serviceName).toBe('atrium');
    expect(second.exportUrl).toBe(first.exportUrl);

    await first.shutdown();
    await first.shutdown(); // a second shutdown of one holder changes nothing
    // The second holder still exports.
    await second.withSpan('after-first-shutdown', {}, () => undefined);
    await second.flush();
    const spans = await receiver.waitFor((all) => all.some((s) => s.name === 'after-first-shutdown'), 10_000);
    expect(spans.find((s) => s.name === 'after-first-shutdown')?.serviceName).toBe('atrium');
    await second.shutdown();

    // A fresh start after everyone shut down takes the new options.
    const third = initTelemetry({ serviceName: 'media-repo', logLevel: 'silent' });
    expect(third.tracer).not.toBe(first.tracer);
    expect(third.serviceName).toBe('media-repo');
    expect(third.exportUrl).toBeUndefined();
    await third.shutdown();
  });

  it('makes spans with trace IDs even without an exporter', async () => {
    const saved = { ...process.env };
    delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    delete process.env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
    const telemetry = initTelemetry({ serviceName: 'push-gateway', logLevel: 'silent' });
    try {
      expect(telemetry.exportUrl).toBeUndefined();
      const traceId = await telemetry.withSpan('local', {}, () => telemetry.currentTraceId());
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(traceId).not.toBe('0'.repeat(32));
      expect(trace.getSpan(context.active())).toBeUndefined();
    } finally {
      await telemetry.shutdown();
      process.env = saved;
    }
  });

  it('exports to OTEL_EXPORTER_OTLP_ENDPOINT when no endpoint is configured', async () => {
    const saved = process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = receiver.url;
    const telemetry = initTelemetry({ serviceName: 'key-server', logLevel: 'silent' });
    try {
      await telemetry.withSpan('from-env', {}, () => undefined);
      await telemetry.flush();
      const spans = await receiver.waitFor((all) => all.some((s) => s.name === 'from-env'), 10_000);
      expect(spans.find((s) => s.name === 'from-env')?.serviceName).toBe('key-server');
    } finally {
      await telemetry.shutdown();
      if (saved === undefined) delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT;
      else process.env.OTEL_EXPORTER_OTLP_ENDPOINT = saved;
    }
  });

  it('serves the metrics text with the default process metrics', async () => {
    const telemetry = initTelemetry({ serviceName: 'sync', logLevel: 'silent' });
    try {
      const { contentType, body } = await telemetry.metricsText();
      expect(contentType).toContain('text/plain');
      expect(body).toContain('atrium_process_resident_memory_bytes');
    } finally {
      await telemetry.shutdown();
    }
  });
});
