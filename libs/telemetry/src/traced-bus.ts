import { context, SpanKind, trace, type Attributes, type Span } from '@opentelemetry/api';
import type {
  Bus,
  BusMessage,
  ConsumeOptions,
  Headers,
  RequestOptions,
  StreamMessage,
  StreamSpec,
  Subscription,
} from '@atrium/bus';
import type { Telemetry } from './telemetry';
import { ATRIUM_SERVICE_ATTRIBUTE, extractTraceContext, injectTraceHeaders, recordSpanError } from './spans';

export interface TracedBusOptions {
  /** `messaging.system` of the spans; guessed from the adapter when not given (`nats` or `inprocess`). */
  messagingSystem?: string;
}

/** The adapter's own `messagingSystem` if it has one, else `nats` for a NATS adapter and `inprocess` otherwise. */
function messagingSystemOf(bus: Bus): string {
  const declared = (bus as { messagingSystem?: unknown }).messagingSystem;
  if (typeof declared === 'string' && declared !== '') return declared;
  return /nats/i.test(bus.constructor.name) ? 'nats' : 'inprocess';
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * A Bus whose every message carries the W3C trace context (ARCHITECTURE.md
 * "Observability": traces across HTTP and NATS, trace context in message
 * headers). Senders make CLIENT/PRODUCER spans and inject `traceparent` (and
 * `tracestate`) into the headers; receivers extract it and run the handler in
 * a SERVER/CONSUMER span that is a child of the sender's span, so one client
 * request or one federation transaction is one trace end to end, whichever
 * processes it crosses. Span names follow the OpenTelemetry messaging
 * conventions: `{operation} {destination}`.
 */
class TracedBus implements Bus {
  private readonly system: string;

  constructor(
    private readonly inner: Bus,
    private readonly telemetry: Telemetry,
    private readonly serviceName: string,
    options: TracedBusOptions,
  ) {
    this.system = options.messagingSystem ?? messagingSystemOf(inner);
  }

  private attributes(subject: string, operation: string, type: string, extra: Attributes = {}): Attributes {
    return {
      [ATRIUM_SERVICE_ATTRIBUTE]: this.serviceName,
      'messaging.system': this.system,
      'messaging.destination.name': subject,
      'messaging.operation.name': operation,
      'messaging.operation.type': type,
      ...extra,
    };
  }

  /** Runs `send` inside a new span (child of the active context) whose trace context it passes on in headers. */
  private async send<T>(name: string, kind: SpanKind, attributes: Attributes, headers: Headers | undefined, send: (headers: Headers, span: Span) => Promise<T>): Promise<T> {
    const parent = context.active();
    const span = this.telemetry.tracer.startSpan(name, { kind, attributes }, parent);
    const active = trace.setSpan(parent, span);
    try {
      return await context.with(active, () => send(injectTraceHeaders(headers, active), span));
    } catch (error) {
      recordSpanError(span, error);
      throw error;
    } finally {
      span.end();
    }
  }

  /** Runs a received message's handler inside a span whose parent is the sender's span, taken from the headers. */
  private receive<T>(name: string, kind: SpanKind, attributes: Attributes, headers: Headers, run: () => Promise<T>): Promise<T> {
    const parent = extractTraceContext(headers);
    const span = this.telemetry.tracer.startSpan(name, { kind, attributes }, parent);
    return context.with(trace.setSpan(parent, span), async () => {
      try {
        return await run();
      } catch (error) {
        recordSpanError(span, error);
        throw error;
      } finally {
        span.end();
      }
    });
  }

  request<Req, Res>(subject: string, data: Req, options: RequestOptions = {}): Promise<Res> {
    return this.send(`send ${subject}`, SpanKind.CLIENT, this.attributes(subject, 'send', 'send'), options.headers, (headers) =>
      this.inner.request<Req, Res>(subject, data, { ...options, headers }),
    );
  }

  handle<Req, Res>(subject: string, handler: (message: BusMessage<Req>) => Promise<Res>): Promise<Subscription> {
    return this.inner.handle<Req, Res>(subject, (message) =>
      this.receive(`process ${message.subject}`, SpanKind.SERVER, this.attributes(message.subject, 'process', 'process'), message.headers, () => handler(message)),
    );
  }

  ensureStream(spec: StreamSpec): Promise<void> {
    return this.inner.ensureStream(spec);
  }

  publish<T>(subject: string, data: T, headers?: Headers): Promise<number> {
    return this.send(`publish ${subject}`, SpanKind.PRODUCER, this.attributes(subject, 'publish', 'send'), headers, async (traced, span) => {
      const sequence = await this.inner.publish(subject, data, traced);
      span.setAttribute('atrium.bus.sequence', sequence);
      return sequence;
    });
  }

  consume<T>(stream: string, options: ConsumeOptions, handler: (message: StreamMessage<T>) => Promise<void>): Promise<Subscription> {
    return this.inner.consume<T>(stream, options, (message) =>
      this.receive(
        `process ${message.subject}`,
        SpanKind.CONSUMER,
        this.attributes(message.subject, 'process', 'process', {
          'messaging.consumer.group.name': options.durable,
          'messaging.destination.subscription.name': stream,
          'atrium.bus.sequence': message.sequence,
          'atrium.bus.delivery_count': message.deliveryCount,
        }),
        message.headers,
        () => handler(message),
      ),
    );
  }

  notify<T>(subject: string, data: T, headers?: Headers): Promise<void> {
    return this.send(`publish ${subject}`, SpanKind.PRODUCER, this.attributes(subject, 'publish', 'send'), headers, (traced) => this.inner.notify(subject, data, traced));
  }

  subscribe<T>(subject: string, handler: (message: BusMessage<T>) => void): Promise<Subscription> {
    return this.inner.subscribe<T>(subject, (message) => {
      const parent = extractTraceContext(message.headers);
      const span = this.telemetry.tracer.startSpan(`process ${message.subject}`, { kind: SpanKind.CONSUMER, attributes: this.attributes(message.subject, 'process', 'process') }, parent);
      const fail = (error: unknown): void => {
        recordSpanError(span, error);
        span.end();
        this.telemetry.logger.warn({ subject: message.subject, err: error }, 'bus subscriber failed');
      };
      let result: unknown;
      try {
        // The port types this handler as returning void, but an async one is
        // common: keep its span open until it settles.
        result = context.with(trace.setSpan(parent, span), () => handler(message) as unknown);
      } catch (error) {
        fail(error);
        throw error;
      }
      if (isPromiseLike(result)) {
        result.then(() => span.end(), fail);
      } else {
        span.end();
      }
      // Handed back unchanged, so the adapter sees what it would without tracing.
      return result as void;
    });
  }

  ping(): Promise<boolean> {
    return this.inner.ping();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Wraps a bus so that every message it sends or receives is traced (see TracedBus). */
export function tracedBus(bus: Bus, telemetry: Telemetry, serviceName: string, options: TracedBusOptions = {}): Bus {
  return new TracedBus(bus, telemetry, serviceName, options);
}
