/**
 * Signed requests to other homeservers. Spec: server-server-api "API
 * standards", "TLS", "Resolving server names", "Request Authentication".
 */
import { SpanKind } from '@opentelemetry/api';
import { signRequest, type JsonObject, type JsonSigner, type JsonValue } from '@atrium/matrix';
import { injectTraceHeaders, type Telemetry } from '@atrium/telemetry';
import { FederationHttpError, FederationUnreachableError, type FederationClient, type FederationRequest, type ServerResolver } from './api';
import { TransportError, type HttpsResponse, type HttpsTransport } from './transport';

const DEFAULT_TIMEOUT_MS = 30_000;
/** Room state and backfill answers can be large; anything beyond this is refused rather than buffered. */
export const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

/** The request target as sent and signed: path, then the query with every key and value percent-encoded. */
export function requestTarget(path: string, query: FederationRequest['query']): string {
  if (!query) return path;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(query)) {
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(v))}`);
  }
  return parts.length === 0 ? path : `${path}${path.includes('?') ? '&' : '?'}${parts.join('&')}`;
}

export interface HttpFederationClientOptions {
  /** Our server name: the `origin` of signed requests. */
  serverName: string;
  signingKey: JsonSigner;
  resolver: ServerResolver;
  transport: HttpsTransport;
  /**
   * When given, each request is a client span `federation.request` (destination,
   * method, path; the query is left out, it can name users) and carries the W3C
   * trace context, so a trace continues into another Atrium.
   */
  telemetry?: Telemetry;
}

export class HttpFederationClient implements FederationClient {
  constructor(private readonly options: HttpFederationClientOptions) {}

  async request<T = JsonObject>(request: FederationRequest): Promise<T> {
    const response = await this.exchange(request, 'application/json');
    const text = response.body.toString('utf8');
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null) {
      throw new FederationUnreachableError(request.destination, 'protocol', `${request.method} ${request.path} on ${request.destination}: the answer is not a JSON object`);
    }
    return parsed as T;
  }

  /**
   * A signed request whose 2xx answer is returned as bytes with its headers
   * (federation media: multipart/mixed answers). Non-2xx answers throw
   * FederationHttpError as `request` does.
   */
  async requestBytes(request: FederationRequest): Promise<HttpsResponse> {
    return this.exchange(request, '*/*');
  }

  private async exchange(request: FederationRequest, accept: string): Promise<HttpsResponse> {
    const telemetry = this.options.telemetry;
    if (!telemetry) return this.send(request, accept, {});
    // Outcome, not destination, as a label: destinations are unbounded.
    const duration = telemetry.metrics.histogram('federation_client_request_duration_seconds', 'Outgoing federation and key requests by method and outcome (status class or unreachable reason)', ['method', 'outcome']);
    const started = process.hrtime.bigint();
    const observe = (outcome: string): void => {
      duration.observe({ method: request.method, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    };
    return telemetry.withSpan(
      'federation.request',
      { kind: SpanKind.CLIENT, attributes: { 'matrix.destination': request.destination, 'http.request.method': request.method, 'url.path': request.path } },
      async (span) => {
        try {
          const response = await this.send(request, accept, injectTraceHeaders());
          span.setAttribute('http.response.status_code', response.status);
          observe('2xx');
          return response;
        } catch (err) {
          if (err instanceof FederationHttpError) {
            span.setAttribute('http.response.status_code', err.status);
            observe(`${Math.floor(err.status / 100)}xx`);
          } else if (err instanceof FederationUnreachableError) {
            span.setAttribute('matrix.unreachable_reason', err.reason);
            observe(err.reason);
          } else {
            observe('error');
          }
          throw err;
        }
      },
    );
  }

  private async send(request: FederationRequest, accept: string, traceHeaders: Record<string, string>): Promise<HttpsResponse> {
    const { destination } = request;
    if (!request.path.startsWith('/_matrix/')) throw new TypeError(`federation paths start with /_matrix/: ${request.path}`);
    const deadline = Date.now() + (request.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const uri = requestTarget(request.path, request.query);
    const headers: Record<string, string> = { ...traceHeaders, Accept: accept, 'User-Agent': 'Atrium' };
    let body: Buffer | undefined;
    if (request.body !== undefined) {
      body = Buffer.from(JSON.stringify(request.body), 'utf8');
      headers['Content-Type'] = 'application/json';
    }
    if (request.signed !== false) {
      // The names before delegation are signed ("Request Authentication":
      // delegation does not affect these).
      headers['Authorization'] = signRequest(
        { method: request.method, uri, origin: this.options.serverName, destination, content: request.body as JsonValue | undefined },
        this.options.signingKey,
      );
    }

    const candidates = await this.options.resolver.resolve(destination);
    let lastError: TransportError | undefined;
    for (const target of candidates) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      let response;
      try {
        response = await this.options.transport.exchange(target, {
          method: request.method,
          path: uri,
          headers,
          body,
          timeoutMs: remaining,
          maxBytes: request.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES,
        });
      } catch (err) {
        if (!(err instanceof TransportError)) throw err;
        lastError = err;
        // An answer too large or malformed will not be better elsewhere; anything else may.
        if (err.reason === 'protocol' || err.reason === 'timeout') break;
        continue;
      }
      if (response.status < 200 || response.status >= 300) {
        const text = response.body.toString('utf8');
        let parsed: unknown;
        let isJson = true;
        try {
          parsed = text === '' ? undefined : JSON.parse(text);
        } catch {
          isJson = false;
        }
        const errcode = isJson && typeof parsed === 'object' && parsed !== null && typeof (parsed as { errcode?: unknown }).errcode === 'string' ? (parsed as { errcode: string }).errcode : undefined;
        const error = isJson && typeof parsed === 'object' && parsed !== null ? (parsed as { error?: unknown }).error : undefined;
        throw new FederationHttpError(
          destination,
          response.status,
          errcode,
          isJson ? parsed : text.slice(0, 1000),
          `${request.method} ${request.path} on ${destination}: ${response.status}${errcode ? ` ${errcode}` : ''}${typeof error === 'string' ? ` ${error}` : ''}`,
        );
      }
      return response;
    }
    if (!lastError) throw new FederationUnreachableError(destination, 'timeout', `${destination}: deadline passed before a connection`);
    throw new FederationUnreachableError(destination, lastError.reason, `${destination}: ${lastError.message}`);
  }
}
