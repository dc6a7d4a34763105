import { context, propagation, ROOT_CONTEXT, SpanStatusCode, trace, type Attributes, type Context, type Span } from '@opentelemetry/api';

/** Attribute naming the Atrium module that made a span (in embedded mode every module shares `service.name` = `atrium`). */
export const ATRIUM_SERVICE_ATTRIBUTE = 'atrium.service';
/** Attribute holding the Matrix error code of a failed request (client-server-api "Standard error response"). */
export const MATRIX_ERRCODE_ATTRIBUTE = 'matrix.errcode';

/** The trace ID of the active span, or undefined outside any span. */
export function currentTraceId(): string | undefined {
  const span = trace.getActiveSpan();
  return span && span.spanContext().traceId;
}

/** The span ID of the active span, or undefined outside any span. */
export function currentSpanId(): string | undefined {
  const span = trace.getActiveSpan();
  return span && span.spanContext().spanId;
}

/** Adds attributes to the active span (the HTTP request's, or the bus handler's); does nothing outside a span. */
export function setSpanAttributes(attributes: Attributes): void {
  trace.getActiveSpan()?.setAttributes(attributes);
}

/** Records an error on the span and marks it failed. */
export function recordSpanError(span: Span, error: unknown): void {
  if (error instanceof Error) {
    span.recordException(error);
    const code = (error as { code?: unknown }).code;
    span.setAttribute('error.type', typeof code === 'string' ? code : error.name);
    span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  } else {
    span.setAttribute('error.type', typeof error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: String(error) });
  }
}

/**
 * W3C trace context (`traceparent`, `tracestate`) of the active span written
 * into a copy of the headers, for messages and outgoing HTTP requests.
 */
export function injectTraceHeaders(headers: Record<string, string> = {}, from: Context = context.active()): Record<string, string> {
  const carrier: Record<string, string> = { ...headers };
  propagation.inject(from, carrier);
  return carrier;
}

/** The context carried by incoming headers (a remote parent), on top of the root context. */
export function extractTraceContext(headers: Record<string, string | string[] | undefined>, base: Context = ROOT_CONTEXT): Context {
  return propagation.extract(base, headers, {
    get(carrier, key) {
      const value = carrier[key] ?? carrier[key.toLowerCase()];
      return value;
    },
    keys(carrier) {
      return Object.keys(carrier);
    },
  });
}
