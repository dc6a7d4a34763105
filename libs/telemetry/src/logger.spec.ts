import { context, trace, ROOT_CONTEXT } from '@opentelemetry/api';
import { createLogger, pathOf, REDACTED, redactUrl } from './logger';
import { initTelemetry } from './telemetry';

/** Collects the JSON lines pino writes. */
function lineSink(): { write(line: string): void; records(): Array<Record<string, unknown>>; text(): string } {
  const lines: string[] = [];
  return {
    write: (line: string) => void lines.push(line),
    records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>),
    text: () => lines.join(''),
  };
}

describe('redactUrl', () => {
  it('replaces access_token query values and keeps the rest of the URL as it was', () => {
    expect(redactUrl('/_matrix/client/v3/sync?since=s1&access_token=syt_secret&timeout=3000')).toBe(
      `/_matrix/client/v3/sync?since=s1&access_token=${REDACTED}&timeout=3000`,
    );
    expect(redactUrl('https://example.org/x?access_token=abc#frag')).toBe(`https://example.org/x?access_token=${REDACTED}#frag`);
    expect(redactUrl('/a?access%5Ftoken=abc&b=%20c')).toBe(`/a?access%5Ftoken=${REDACTED}&b=%20c`);
    expect(redactUrl('/a?access_token')).toBe(`/a?access_token=${REDACTED}`);
    expect(redactUrl('/a?refresh_token=r1&access_token=a1&access_token=a2')).toBe(`/a?refresh_token=${REDACTED}&access_token=${REDACTED}&access_token=${REDACTED}`);
  });

  it('leaves URLs without secrets untouched', () => {
    expect(redactUrl('/_matrix/client/v3/rooms/!r:x/messages?dir=b&limit=10')).toBe('/_matrix/client/v3/rooms/!r:x/messages?dir=b&limit=10');
    expect(redactUrl('/no/query')).toBe('/no/query');
    expect(redactUrl('/a?my_access_token=kept')).toBe('/a?my_access_token=kept');
  });

  it('pathOf drops the query string', () => {
    expect(pathOf('/a/b?access_token=x')).toBe('/a/b');
    expect(pathOf('/a/b#f')).toBe('/a/b');
    expect(pathOf('/a/b')).toBe('/a/b');
  });
});

describe('createLogger', () => {
  it('writes JSON lines and never the secret fields', () => {
    const sink = lineSink();
    const logger = createLogger({ serviceName: 'client-api', destination: sink });
    logger.info(
      {
        access_token: 'tok-top',
        body: { password: 'pw-body', new_password: 'pw-new', auth: { type: 'm.login.password', password: 'pw-auth' }, refresh_token: 'rt' },
        auth: { password: 'pw-auth-top', session: 'kept-session' },
        headers: { authorization: 'Bearer hdr-lower', Authorization: 'Bearer hdr-upper', host: 'kept-host' },
        user: '@alice:example.org',
      },
      'login attempt',
    );
    const text = sink.text();
    for (const secret of ['tok-top', 'pw-body', 'pw-new', 'pw-auth', 'pw-auth-top', 'rt"', 'hdr-lower', 'hdr-upper']) {
      expect(text).not.toContain(secret);
    }
    const [record] = sink.records();
    expect(record.msg).toBe('login attempt');
    expect(record.service).toBe('client-api');
    expect(record.user).toBe('@alice:example.org');
    expect(record.auth).toEqual({ password: REDACTED, session: 'kept-session' });
    expect((record.headers as Record<string, unknown>).host).toBe('kept-host');
    expect((record.body as Record<string, unknown>).auth).toEqual({ type: 'm.login.password', password: REDACTED });
  });

  it('honours the level', () => {
    const sink = lineSink();
    const logger = createLogger({ serviceName: 's', level: 'warn', destination: sink });
    logger.info('hidden');
    logger.warn('shown');
    expect(sink.records().map((r) => r.msg)).toEqual(['shown']);
  });

  it('adds trace_id and span_id of the active span', async () => {
    const telemetry = initTelemetry({ serviceName: 'logger-spec' });
    try {
      const sink = lineSink();
      const logger = createLogger({ serviceName: 's', destination: sink });
      logger.info('outside');
      let ids: { traceId: string; spanId: string } | undefined;
      await telemetry.withSpan('work', {}, async (span) => {
        ids = span.spanContext();
        await new Promise((resolve) => setTimeout(resolve, 5));
        logger.info('inside, after an await');
      });
      // An explicit root context: no span.
      context.with(ROOT_CONTEXT, () => logger.info('root'));
      const [outside, inside, root] = sink.records();
      expect(outside.trace_id).toBeUndefined();
      expect(inside.trace_id).toBe(ids?.traceId);
      expect(inside.span_id).toBe(ids?.spanId);
      expect(inside.trace_id).toMatch(/^[0-9a-f]{32}$/);
      expect(root.trace_id).toBeUndefined();
      expect(trace.getActiveSpan()).toBeUndefined();
    } finally {
      await telemetry.shutdown();
    }
  });
});
