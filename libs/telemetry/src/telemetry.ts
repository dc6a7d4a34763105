import { randomUUID } from 'node:crypto';
import { context, propagation, trace, type Attributes, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { CompositePropagator, W3CBaggagePropagator, W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider, type SpanProcessor } from '@opentelemetry/sdk-trace';
import type { DestinationStream } from 'pino';
import type { Registry } from 'prom-client';
import { createLogger, type Logger, type LogLevel } from './logger';
import { Metrics } from './metrics';
import { ATRIUM_SERVICE_ATTRIBUTE, currentTraceId, recordSpanError, setSpanAttributes } from './spans';

export interface TelemetryOptions {
  /** `service.name` of every span: the app name in cluster mode, `atrium` in embedded mode. */
  serviceName: string;
  serviceVersion?: string;
  /**
   * OTLP/HTTP base URL (e.g. `http://otel-collector:4318`; `/v1/traces` is
   * appended) or the full traces URL. Falls back to
   * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT.
   * Without any, spans are made (logs carry their IDs) but not exported.
   */
  otlpEndpoint?: string;
  logLevel?: LogLevel;
  /** Where log lines go; standard output when not given. */
  logDestination?: DestinationStream;
  /** Longest wait before a finished span is exported (BatchSpanProcessor delay). */
  exportDelayMs?: number;
}

export interface Telemetry {
  readonly serviceName: string;
  readonly tracer: Tracer;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly registry: Registry;
  /** The OTLP traces URL spans are sent to, if any. */
  readonly exportUrl: string | undefined;
  /** Prometheus text of every metric, with its content type, for `/metrics`. */
  metricsText(): Promise<{ contentType: string; body: string }>;
  /** Trace ID of the active span (undefined outside any span). */
  currentTraceId(): string | undefined;
  /** Adds attributes to the active span. */
  setAttributes(attributes: Attributes): void;
  /**
   * Runs `fn` inside a new span (child of the active one, or of `parent`),
   * ending it when `fn` settles and recording a thrown error.
   */
  withSpan<T>(name: string, options: SpanOptions & { parent?: Context; service?: string }, fn: (span: Span) => Promise<T> | T): Promise<T>;
  /** Exports every finished span now. */
  flush(): Promise<void>;
  /** Flushes spans; the last holder's shutdown also stops the tracer provider. */
  shutdown(): Promise<void>;
}

/** What one process shares between every initTelemetry() holder. */
interface TelemetryCore {
  serviceName: string;
  provider: TracerProvider;
  tracer: Tracer;
  logger: Logger;
  metrics: Metrics;
  exportUrl: string | undefined;
  holders: number;
}

let core: TelemetryCore | undefined;

const TRACES_PATH = '/v1/traces';

/**
 * The OTLP traces URL: an explicit endpoint or OTEL_EXPORTER_OTLP_ENDPOINT is
 * a base URL to which `/v1/traces` is appended (OTLP exporter specification),
 * unless it already ends with it; OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as given.
 */
export function resolveTracesUrl(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const base = explicit?.trim() || undefined;
  if (base === undefined) {
    const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
    if (specific) return specific;
  }
  const chosen = base ?? (env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || undefined);
  if (chosen === undefined) return undefined;
  const trimmed = chosen.replace(/\/+$/, '');
  return trimmed.endsWith(TRACES_PATH) ? trimmed : `${trimmed}${TRACES_PATH}`;
}

function createCore(options: TelemetryOptions): TelemetryCore {
  const exportUrl = resolveTracesUrl(options.otlpEndpoint);
  const spanProcessors: SpanProcessor[] = [];
  if (exportUrl !== undefined) {
    spanProcessors.push(
      new BatchSpanProcessor({
        exporter: new OTLPTraceExporter({ url: exportUrl }),
        scheduledDelayMillis: options.exportDelayMs ?? 1000,
      }),
    );
  }
  const resource = resourceFromAttributes({
    'service.name': options.serviceName,
    'service.instance.id': randomUUID(),
    ...(options.serviceVersion !== undefined ? { 'service.version': options.serviceVersion } : {}),
  });
  const provider = new TracerProvider({ resource, spanProcessors });

  // Spans nest across awaits through AsyncLocalStorage; W3C trace context
  // (`traceparent`/`tracestate`) and baggage cross HTTP and the bus.
  context.disable();
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.disable();
  propagation.setGlobalPropagator(new CompositePropagator({ propagators: [new W3CTraceContextPropagator(), new W3CBaggagePropagator()] }));
  trace.disable();
  trace.setGlobalTracerProvider(provider);

  const metrics = new Metrics();
  metrics.collectDefaults();
  return {
    serviceName: options.serviceName,
    provider,
    tracer: provider.getTracer('@atrium/telemetry'),
    logger: createLogger({ serviceName: options.serviceName, level: options.logLevel, destination: options.logDestination }),
    metrics,
    exportUrl,
    holders: 0,
  };
}

async function releaseCore(shared: TelemetryCore): Promise<void> {
  shared.holders -= 1;
  if (shared.holders > 0) {
    await shared.provider.forceFlush();
    return;
  }
  if (core === shared) core = undefined;
  await shared.provider.shutdown();
  shared.logger.flush();
  trace.disable();
  propagation.disable();
  context.disable();
}

/**
 * Telemetry of this process. Idempotent: the first call sets up the tracer
 * provider, logger and metrics registry; later calls (the embedded mode runs
 * every service in one process) share them and their options are ignored.
 * Each caller's shutdown() flushes; the last one stops the provider.
 */
export function initTelemetry(options: TelemetryOptions): Telemetry {
  const shared = core ?? (core = createCore(options));
  shared.holders += 1;
  if (shared.serviceName !== options.serviceName) {
    shared.logger.debug({ requested: options.serviceName, using: shared.serviceName }, 'telemetry already initialised in this process; sharing it');
  }
  let released = false;
  const telemetry: Telemetry = {
    serviceName: shared.serviceName,
    tracer: shared.tracer,
    logger: shared.logger,
    metrics: shared.metrics,
    registry: shared.metrics.registry,
    exportUrl: shared.exportUrl,
    metricsText: () => shared.metrics.text(),
    currentTraceId,
    setAttributes: setSpanAttributes,
    withSpan(name, spanOptions, fn) {
      const { parent, service, ...rest } = spanOptions;
      const parentContext = parent ?? context.active();
      const span = shared.tracer.startSpan(name, { ...rest, attributes: { [ATRIUM_SERVICE_ATTRIBUTE]: service ?? shared.serviceName, ...rest.attributes } }, parentContext);
      return context.with(trace.setSpan(parentContext, span), async () => {
        try {
          return await fn(span);
        } catch (error) {
          recordSpanError(span, error);
          throw error;
        } finally {
          span.end();
        }
      });
    },
    flush: () => shared.provider.forceFlush(),
    async shutdown() {
      if (released) return;
      released = true;
      await releaseCore(shared);
    },
  };
  return telemetry;
}
