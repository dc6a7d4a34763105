import { context, SpanKind, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { pathOf, redactUrl } from './logger';
import type { Telemetry } from './telemetry';
import { ATRIUM_SERVICE_ATTRIBUTE, extractTraceContext, MATRIX_ERRCODE_ATTRIBUTE, recordSpanError } from './spans';

export interface HttpTelemetryOptions {
  /** Names the module serving these routes (`atrium.service` on spans, `service` in log lines). */
  serviceName: string;
}

/** The histogram observed once per request; labels method, route (the route pattern) and status. */
export const HTTP_DURATION_METRIC = 'atrium_http_request_duration_seconds';

interface RequestTelemetry {
  span: Span;
  context: Context;
  errcode?: string;
}

const instrumented = new WeakSet<FastifyInstance>();

/** The Matrix `errcode` of an error response body (client-server-api "Standard error response"), if there is one. */
function errcodeOf(reply: FastifyReply, payload: unknown): string | undefined {
  if (reply.statusCode < 400) return undefined;
  const contentType = reply.getHeader('content-type');
  if (typeof contentType === 'string' && !contentType.includes('json')) return undefined;
  const text = typeof payload === 'string' ? payload : Buffer.isBuffer(payload) ? payload.toString('utf8') : undefined;
  if (text === undefined || text.length > 65536) return undefined;
  try {
    const body: unknown = JSON.parse(text);
    if (typeof body === 'object' && body !== null) {
      const errcode = (body as { errcode?: unknown }).errcode;
      if (typeof errcode === 'string') return errcode;
    }
  } catch {
    // Not JSON after all: no errcode.
  }
  return undefined;
}

const KNOWN_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE']);

/** Unknown methods share one label value, as OpenTelemetry's HTTP conventions do (`_OTHER`), so clients cannot grow the label set. */
function methodLabel(method: string): string {
  return KNOWN_METHODS.has(method) ? method : '_OTHER';
}

/** The route pattern (e.g. `/_matrix/client/v3/rooms/:roomId/send/:eventType/:txnId`), undefined when no route matched. */
function routeOf(request: FastifyRequest): string | undefined {
  const url = request.routeOptions.url;
  return typeof url === 'string' && url !== '' ? url : undefined;
}

/**
 * Traces, logs and measures every request of a Fastify server
 * (ARCHITECTURE.md "Observability"):
 *
 * - a SERVER span per request, continuing an incoming `traceparent`, made the
 *   active context for the handler so that bus requests and other spans made
 *   while handling it are its children;
 * - one JSON log line per request with method, route, status, duration and
 *   the trace and span IDs; the URL is logged with its `access_token` query
 *   value removed, and neither headers nor bodies are logged;
 * - the histogram `atrium_http_request_duration_seconds{method,route,status}`.
 *
 * Register it before the routes are added (hooks apply to routes added after).
 */
export function registerHttpTelemetry(fastify: FastifyInstance, telemetry: Telemetry, options: HttpTelemetryOptions): void {
  if (instrumented.has(fastify)) return;
  instrumented.add(fastify);
  const requests = new WeakMap<FastifyRequest, RequestTelemetry>();
  const duration = telemetry.metrics.histogram(HTTP_DURATION_METRIC, 'HTTP request duration in seconds by method, route and status', ['method', 'route', 'status']);

  fastify.addHook('onRequest', (request, _reply, done) => {
    const parent = extractTraceContext(request.headers);
    const span = telemetry.tracer.startSpan(
      request.method,
      {
        kind: SpanKind.SERVER,
        attributes: {
          [ATRIUM_SERVICE_ATTRIBUTE]: options.serviceName,
          'http.request.method': request.method,
          'url.path': pathOf(request.url),
          'url.scheme': request.protocol,
          'client.address': request.ip,
          ...(typeof request.headers['user-agent'] === 'string' ? { 'user_agent.original': request.headers['user-agent'] } : {}),
        },
      },
      parent,
    );
    const active = trace.setSpan(parent, span);
    requests.set(request, { span, context: active });
    context.with(active, done);
  });

  // The body is read from socket events, which run outside the context
  // entered in onRequest: enter it again just before the handler.
  fastify.addHook('preHandler', (request, _reply, done) => {
    const state = requests.get(request);
    if (state) {
      context.with(state.context, done);
    } else {
      done();
    }
  });

  fastify.addHook('onSend', (request, reply, payload, done) => {
    const state = requests.get(request);
    if (state) {
      const errcode = errcodeOf(reply, payload);
      if (errcode !== undefined) {
        state.errcode = errcode;
        state.span.setAttribute(MATRIX_ERRCODE_ATTRIBUTE, errcode);
      }
    }
    done(null, payload);
  });

  fastify.addHook('onError', (request, _reply, error, done) => {
    const state = requests.get(request);
    if (state) recordSpanError(state.span, error);
    done();
  });

  fastify.addHook('onResponse', (request, reply, done) => {
    const state = requests.get(request);
    requests.delete(request);
    const route = routeOf(request);
    const status = reply.statusCode;
    let traceId: string | undefined;
    let spanId: string | undefined;
    if (state) {
      const { span } = state;
      span.setAttribute('http.response.status_code', status);
      if (route !== undefined) {
        span.setAttribute('http.route', route);
        span.updateName(`${request.method} ${route}`);
      }
      // Server spans: 5xx is an error of ours, 4xx the client's (OpenTelemetry HTTP semantic conventions).
      if (status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end();
      ({ traceId, spanId } = span.spanContext());
    }
    const seconds = reply.elapsedTime / 1000;
    duration.observe({ method: methodLabel(request.method), route: route ?? 'unmatched', status: String(status) }, seconds);
    const line = {
      service: options.serviceName,
      method: request.method,
      route: route ?? null,
      path: redactUrl(request.url),
      status,
      duration_ms: Math.round(reply.elapsedTime * 1000) / 1000,
      ...(state?.errcode !== undefined ? { errcode: state.errcode } : {}),
      trace_id: traceId,
      span_id: spanId,
    };
    if (status >= 500) {
      telemetry.logger.error(line, 'request');
    } else {
      telemetry.logger.info(line, 'request');
    }
    done();
  });
}
