import { trace } from '@opentelemetry/api';
import pino, { type DestinationStream, type Logger, type LevelWithSilent } from 'pino';

export type { Logger } from 'pino';
export type LogLevel = LevelWithSilent;

/**
 * Keys whose values never reach a log line (ARCHITECTURE.md "Observability":
 * never log an access token or password). Each key is redacted at the top of
 * the logged object and one or two levels down, where request bodies and
 * header maps usually sit (e.g. `{ body: { auth: { password } } }`).
 */
const SECRET_KEYS = ['access_token', 'refresh_token', 'password', 'new_password', 'Authorization', 'authorization'];

export const REDACTED = '[Redacted]';

export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((key) => `*.${key}`),
  ...SECRET_KEYS.map((key) => `*.*.${key}`),
  'auth.password',
  '*.auth.password',
];

export interface LoggerOptions {
  serviceName: string;
  level?: LogLevel;
  /** Where the JSON lines go; standard output when not given. */
  destination?: DestinationStream;
}

/**
 * JSON lines (pino) with the active span's `trace_id` and `span_id`, so a log
 * line can be found from a trace and the other way round.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level ?? 'info',
      base: { service: options.serviceName },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: [...REDACT_PATHS], censor: REDACTED },
      mixin() {
        const span = trace.getActiveSpan();
        if (!span) return {};
        const { traceId, spanId } = span.spanContext();
        return { trace_id: traceId, span_id: spanId };
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** Query parameters whose values are secrets: client-server-api "Using access tokens" allows `access_token` in the query string. */
const SECRET_QUERY_PARAMETERS = new Set(['access_token', 'refresh_token']);

function decodeQueryKey(raw: string): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch {
    return raw;
  }
}

/**
 * The URL (absolute, or a path with a query string) with every
 * `access_token` (and `refresh_token`) query value replaced, so the URL can be
 * logged. The rest of the URL is kept byte for byte.
 */
export function redactUrl(url: string): string {
  const queryStart = url.indexOf('?');
  if (queryStart < 0) return url;
  const fragmentStart = url.indexOf('#', queryStart);
  const queryEnd = fragmentStart < 0 ? url.length : fragmentStart;
  const query = url.slice(queryStart + 1, queryEnd);
  const redacted = query
    .split('&')
    .map((part) => {
      const equals = part.indexOf('=');
      const key = equals < 0 ? part : part.slice(0, equals);
      return SECRET_QUERY_PARAMETERS.has(decodeQueryKey(key)) ? `${key}=${REDACTED}` : part;
    })
    .join('&');
  return `${url.slice(0, queryStart + 1)}${redacted}${url.slice(queryEnd)}`;
}

/** The path of a request URL without its query string or fragment. */
export function pathOf(url: string): string {
  const end = url.search(/[?#]/);
  return end < 0 ? url : url.slice(0, end);
}
