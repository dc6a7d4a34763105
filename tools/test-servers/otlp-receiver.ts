/**
 * A minimal OpenTelemetry collector for tests: an HTTP server on a random
 * loopback port taking OTLP/HTTP trace exports (POST /v1/traces). The
 * exporter @opentelemetry/exporter-trace-otlp-http sends the JSON encoding
 * (`Content-Type: application/json`, hex trace and span IDs, attributes as
 * `{ key, value: { stringValue | intValue | … } }`), optionally gzipped.
 * Spans are flattened with their resource's `service.name`.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync, inflateSync } from 'node:zlib';

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue };

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  /** Empty parent: undefined (a root span). */
  parentSpanId: string | undefined;
  name: string;
  /** OTLP span kind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  kindName: 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
  attributes: Record<string, AttributeValue>;
  /** `service.name` of the span's resource. */
  serviceName: string;
  resource: Record<string, AttributeValue>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  statusCode: number;
  statusMessage: string | undefined;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  events: Array<{ name: string; attributes: Record<string, AttributeValue> }>;
  links: Array<{ traceId: string; spanId: string }>;
}

export interface OtlpReceiver {
  /** Base URL to give as the OTLP endpoint (the exporter appends `/v1/traces`). */
  url: string;
  /** Every span received so far, in arrival order. */
  spans(): ReceivedSpan[];
  /** Resolves with every span once `pred` accepts them; rejects after `timeoutMs`. */
  waitFor(pred: (spans: ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  stop(): Promise<void>;
}

const KIND_NAMES: ReceivedSpan['kindName'][] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

function asString(value: unknown): string {
  return typeof value === 'string' ? value : typeof value === 'number' ? String(value) : '';
}

/** OTLP AnyValue → plain value (intValue may arrive as a number or a decimal string). */
function decodeValue(value: unknown): AttributeValue {
  if (!isRecord(value)) return null;
  if ('stringValue' in value) return asString(value.stringValue);
  if ('boolValue' in value) return value.boolValue === true;
  if ('intValue' in value) return Number(value.intValue);
  if ('doubleValue' in value) return Number(value.doubleValue);
  if ('bytesValue' in value) return asString(value.bytesValue);
  if ('arrayValue' in value) return asArray(isRecord(value.arrayValue) ? value.arrayValue.values : undefined).map(decodeValue);
  if ('kvlistValue' in value) return decodeAttributes(isRecord(value.kvlistValue) ? value.kvlistValue.values : undefined);
  return null;
}

function decodeAttributes(list: unknown): Record<string, AttributeValue> {
  const attributes: Record<string, AttributeValue> = {};
  for (const entry of asArray(list)) {
    if (isRecord(entry) && typeof entry.key === 'string') attributes[entry.key] = decodeValue(entry.value);
  }
  return attributes;
}

/** An ExportTraceServiceRequest (OTLP JSON) → flat spans. */
export function decodeOtlpTraces(request: unknown): ReceivedSpan[] {
  const spans: ReceivedSpan[] = [];
  if (!isRecord(request)) return spans;
  for (const resourceSpans of asArray(request.resourceSpans)) {
    if (!isRecord(resourceSpans)) continue;
    const resource = decodeAttributes(isRecord(resourceSpans.resource) ? resourceSpans.resource.attributes : undefined);
    const serviceName = typeof resource['service.name'] === 'string' ? resource['service.name'] : '';
    for (const scopeSpans of asArray(resourceSpans.scopeSpans)) {
      if (!isRecord(scopeSpans)) continue;
      for (const span of asArray(scopeSpans.spans)) {
        if (!isRecord(span)) continue;
        const kind = typeof span.kind === 'number' ? span.kind : 0;
        const status = isRecord(span.status) ? span.status : {};
        const parentSpanId = asString(span.parentSpanId);
        spans.push({
          traceId: asString(span.traceId),
          spanId: asString(span.spanId),
          parentSpanId: parentSpanId === '' ? undefined : parentSpanId,
          name: asString(span.name),
          kind,
          kindName: KIND_NAMES[kind] ?? 'UNSPECIFIED',
          attributes: decodeAttributes(span.attributes),
          serviceName,
          resource,
          statusCode: typeof status.code === 'number' ? status.code : 0,
          statusMessage: typeof status.message === 'string' ? status.message : undefined,
          startTimeUnixNano: asString(span.startTimeUnixNano),
          endTimeUnixNano: asString(span.endTimeUnixNano),
          events: asArray(span.events)
            .filter(isRecord)
            .map((event) => ({ name: asString(event.name), attributes: decodeAttributes(event.attributes) })),
          links: asArray(span.links)
            .filter(isRecord)
            .map((link) => ({ traceId: asString(link.traceId), spanId: asString(link.spanId) })),
        });
      }
    }
  }
  return spans;
}

const MAX_BODY = 32 * 1024 * 1024;

async function readBody(request: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request) {
    const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(String(chunk));
    size += buffer.length;
    if (size > MAX_BODY) throw new Error('body too large');
    chunks.push(buffer);
  }
  const body = Buffer.concat(chunks);
  const encoding = request.headers['content-encoding'];
  if (encoding === 'gzip') return gunzipSync(body);
  if (encoding === 'deflate') return inflateSync(body);
  return body;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const received: ReceivedSpan[] = [];
  const waiters = new Set<() => void>();

  const answer = (response: ServerResponse, status: number, body: unknown): void => {
    response.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  };

  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'POST' || path !== '/v1/traces') {
      answer(response, 404, { error: 'only POST /v1/traces' });
      return;
    }
    const contentType = request.headers['content-type'] ?? '';
    if (!contentType.includes('json')) {
      // The protobuf encoding is what exporter-trace-otlp-proto sends; our exporter sends JSON.
      answer(response, 415, { error: `unsupported content type ${contentType}` });
      return;
    }
    readBody(request).then(
      (body) => {
        let spans: ReceivedSpan[];
        try {
          spans = decodeOtlpTraces(JSON.parse(body.toString('utf8')));
        } catch {
          answer(response, 400, { error: 'invalid JSON' });
          return;
        }
        received.push(...spans);
        // OTLP/HTTP "Full Success": an empty ExportTraceServiceResponse.
        answer(response, 200, {});
        for (const wake of [...waiters]) wake();
      },
      () => answer(response, 400, { error: 'unreadable body' }),
    );
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    spans: () => [...received],
    waitFor(pred, timeoutMs = 10_000) {
      return new Promise<ReceivedSpan[]>((resolve, reject) => {
        const check = (): boolean => {
          const all = [...received];
          let done: boolean;
          try {
            done = pred(all);
          } catch (error) {
            clearTimeout(timer);
            waiters.delete(wake);
            reject(error instanceof Error ? error : new Error(String(error)));
            return true;
          }
          if (!done) return false;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(all);
          return true;
        };
        const wake = (): void => {
          check();
        };
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`OTLP receiver: condition not met within ${timeoutMs} ms (${received.length} spans received)`));
        }, timeoutMs);
        if (!check()) waiters.add(wake);
      });
    },
    stop() {
      return new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      });
    },
  };
}
