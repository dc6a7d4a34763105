/**
 * The bus port: how services talk. Two adapters implement it: in-process (the
 * embedded mode) and NATS JetStream (the cluster).
 *
 * - request/handle: RPC with one answer. Several handlers of one subject share
 *   the load (a NATS queue group); each request reaches exactly one.
 * - publish/consume: durable streams. Delivery is at-least-once and in order per
 *   stream; a message is acknowledged when the handler resolves, and redelivered
 *   if it throws or the process dies (ARCHITECTURE.md rule 3: consumers are
 *   idempotent). Consumers with the same durable name share the work.
 * - notify/subscribe: fire-and-forget fan-out to every subscriber (sync wake-ups,
 *   cache invalidation); lost if nobody listens.
 *
 * Every message carries headers; the telemetry lib puts the W3C trace context
 * there (`traceparent`) so a trace spans services.
 */

export type Headers = Record<string, string>;

export interface BusMessage<T> {
  subject: string;
  data: T;
  headers: Headers;
}

export interface StreamMessage<T> extends BusMessage<T> {
  /** Position of the message in its stream (1-based, increasing). */
  sequence: number;
  /** How many times it has been delivered (1 on first delivery). */
  deliveryCount: number;
}

export interface Subscription {
  unsubscribe(): Promise<void>;
}

export interface RequestOptions {
  timeoutMs?: number;
  headers?: Headers;
}

/** Raised to the caller of request() when the handler threw; carries its error code and message. */
export class BusRemoteError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly details?: unknown,
  ) {
    super(message);
    this.name = 'BusRemoteError';
  }
}

/** Raised when no handler answered in time (or none is registered). */
export class BusTimeoutError extends Error {
  constructor(subject: string) {
    super(`no answer on ${subject}`);
    this.name = 'BusTimeoutError';
  }
}

export interface StreamSpec {
  /** Stream name, e.g. `ROOM_EVENTS`. */
  name: string;
  /** Subjects captured, e.g. `['room.events.>']`. */
  subjects: string[];
}

export interface ConsumeOptions {
  /** Consumers sharing a durable name share the work; a new name starts from the beginning (or `deliverNew`). */
  durable: string;
  /** Only take subjects matching this filter. */
  filterSubject?: string;
  /** Start with messages published after the consumer is created. */
  deliverNew?: boolean;
  /** Redelivery delay after a failed handler (default 1000 ms). */
  ackWaitMs?: number;
  /**
   * Deliveries of one message before it is dropped as poison (default 10).
   * A later consume() of the same durable updates this and filterSubject;
   * its position, and so deliverNew, is kept from its creation.
   */
  maxDeliver?: number;
}

export interface Bus {
  request<Req, Res>(subject: string, data: Req, options?: RequestOptions): Promise<Res>;
  handle<Req, Res>(subject: string, handler: (message: BusMessage<Req>) => Promise<Res>): Promise<Subscription>;

  ensureStream(spec: StreamSpec): Promise<void>;
  publish<T>(subject: string, data: T, headers?: Headers): Promise<number>;
  consume<T>(stream: string, options: ConsumeOptions, handler: (message: StreamMessage<T>) => Promise<void>): Promise<Subscription>;

  notify<T>(subject: string, data: T, headers?: Headers): Promise<void>;
  subscribe<T>(subject: string, handler: (message: BusMessage<T>) => void): Promise<Subscription>;

  /** True if the transport is connected (used by /ready). */
  ping(): Promise<boolean>;
  close(): Promise<void>;
}
