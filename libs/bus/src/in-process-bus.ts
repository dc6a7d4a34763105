/**
 * The bus of the embedded mode: every service in one process. It keeps the
 * NATS adapter's semantics (see port.ts) so code tested here behaves the same
 * in the cluster: payloads are copied as JSON, subjects route with NATS
 * wildcards, streams keep messages for durable consumers that share work,
 * acknowledge when the handler resolves and redeliver when it throws.
 *
 * Streams live in memory, bounded by `maxStreamMessages` (oldest dropped, as
 * a NATS stream with a `max_msgs` limit and the `old` discard policy).
 */
import {
  BusTimeoutError,
  type Bus,
  type BusMessage,
  type ConsumeOptions,
  type Headers,
  type RequestOptions,
  type StreamMessage,
  type StreamSpec,
  type Subscription,
} from './port';
import { assertValidSubject, subjectMatches, subjectsOverlap } from './subjects';
import {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_MAX_DELIVER,
  DEFAULT_REQUEST_TIMEOUT_MS,
  copyHeaders,
  decodePayload,
  describeHandlerError,
  encodePayload,
  remoteError,
} from './wire';
import { StreamWorkers, type StreamWorker } from './workers';

export interface InProcessBusOptions {
  /** Messages kept per stream before the oldest are dropped (default 100,000). */
  maxStreamMessages?: number;
}

const DEFAULT_MAX_STREAM_MESSAGES = 100_000;

type RequestHandler = (message: BusMessage<unknown>) => Promise<unknown>;
type NotifyHandler = (message: BusMessage<unknown>) => void;

interface HandlerGroup {
  pattern: string;
  handlers: RequestHandler[];
  /** Round-robin position (a NATS queue group spreads requests over its members). */
  next: number;
}

interface StoredMessage {
  sequence: number;
  subject: string;
  /** JSON text, parsed afresh for each delivery. */
  payload: string;
  headers: Headers;
}

interface PendingDelivery {
  deliveryCount: number;
  /** Not before this time (ms since epoch) may it go out again. */
  redeliverAt: number;
  inFlight: boolean;
}

interface DurableState {
  filterSubject?: string;
  maxDeliver: number;
  /** The first sequence this durable has not yet delivered. */
  nextSequence: number;
  /** Delivered and not yet acknowledged. */
  pending: Map<number, PendingDelivery>;
  /** Idle workers waiting for a message. */
  waiters: Set<() => void>;
}

interface MemoryStream {
  spec: StreamSpec;
  messages: StoredMessage[];
  lastSequence: number;
  durables: Map<string, DurableState>;
}

export class InProcessBus implements Bus {
  readonly messagingSystem = 'inprocess';
  private readonly maxStreamMessages: number;
  private readonly handlerGroups = new Map<string, HandlerGroup>();
  private readonly subscribers = new Set<{ pattern: string; handler: NotifyHandler }>();
  private readonly streams = new Map<string, MemoryStream>();
  private readonly workers = new StreamWorkers();
  private closed = false;

  constructor(options: InProcessBusOptions = {}) {
    this.maxStreamMessages = options.maxStreamMessages ?? DEFAULT_MAX_STREAM_MESSAGES;
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('bus is closed');
  }

  async request<Req, Res>(subject: string, data: Req, options: RequestOptions = {}): Promise<Res> {
    this.assertOpen();
    assertValidSubject(subject, false);
    const payload = encodePayload(data);
    const headers = copyHeaders(options.headers);
    // A NATS request with no subscriber fails at once ("no responders"); so does this one.
    const group = [...this.handlerGroups.values()].find((g) => g.handlers.length > 0 && subjectMatches(g.pattern, subject));
    if (!group) throw new BusTimeoutError(subject);
    const handler = group.handlers[group.next % group.handlers.length];
    group.next = (group.next + 1) % group.handlers.length;

    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(() => fail(new BusTimeoutError(subject)), timeoutMs);
    });
    const answer = (async () => {
      // Yield first so the handler never runs inside the caller's synchronous stack.
      await Promise.resolve();
      try {
        return encodePayload(await handler({ subject, data: decodePayload(payload), headers }));
      } catch (error) {
        throw remoteError(describeHandlerError(error));
      }
    })();
    // A late failure after the timeout has nobody to reach.
    answer.catch(() => undefined);
    try {
      return decodePayload<Res>(await Promise.race([answer, timeout]));
    } finally {
      clearTimeout(timer);
    }
  }

  async handle<Req, Res>(subject: string, handler: (message: BusMessage<Req>) => Promise<Res>): Promise<Subscription> {
    this.assertOpen();
    assertValidSubject(subject, true);
    let group = this.handlerGroups.get(subject);
    if (!group) {
      group = { pattern: subject, handlers: [], next: 0 };
      this.handlerGroups.set(subject, group);
    }
    const entry = handler as RequestHandler;
    group.handlers.push(entry);
    const owner = group;
    return {
      unsubscribe: async () => {
        const index = owner.handlers.indexOf(entry);
        if (index >= 0) owner.handlers.splice(index, 1);
      },
    };
  }

  async ensureStream(spec: StreamSpec): Promise<void> {
    this.assertOpen();
    for (const subject of spec.subjects) assertValidSubject(subject, true);
    // As nats-server: a subject is captured by one stream at most.
    for (const other of this.streams.values()) {
      if (other.spec.name === spec.name) continue;
      const clash = spec.subjects.find((mine) => other.spec.subjects.some((theirs) => subjectsOverlap(mine, theirs)));
      if (clash !== undefined) throw new Error(`subjects overlap with an existing stream: ${clash} (stream ${other.spec.name})`);
    }
    const existing = this.streams.get(spec.name);
    if (existing) {
      existing.spec = { name: spec.name, subjects: [...spec.subjects] };
      return;
    }
    this.streams.set(spec.name, { spec: { name: spec.name, subjects: [...spec.subjects] }, messages: [], lastSequence: 0, durables: new Map() });
  }

  async publish<T>(subject: string, data: T, headers?: Headers): Promise<number> {
    this.assertOpen();
    assertValidSubject(subject, false);
    const stream = [...this.streams.values()].find((s) => s.spec.subjects.some((pattern) => subjectMatches(pattern, subject)));
    if (!stream) throw new Error(`no stream captures subject ${subject}`);
    const message: StoredMessage = { sequence: ++stream.lastSequence, subject, payload: encodePayload(data), headers: copyHeaders(headers) };
    stream.messages.push(message);
    if (stream.messages.length > this.maxStreamMessages) stream.messages.splice(0, stream.messages.length - this.maxStreamMessages);
    for (const durable of stream.durables.values()) this.wakeAll(durable);
    // As in NATS, a message a stream captures is still an ordinary message on its subject.
    this.fanOut(subject, message.payload, message.headers);
    return message.sequence;
  }

  async consume<T>(streamName: string, options: ConsumeOptions, handler: (message: StreamMessage<T>) => Promise<void>): Promise<Subscription> {
    this.assertOpen();
    const stream = this.streams.get(streamName);
    if (!stream) throw new Error(`stream ${streamName} not found`);
    if (options.filterSubject !== undefined) assertValidSubject(options.filterSubject, true);
    let durable = stream.durables.get(options.durable);
    if (!durable) {
      durable = {
        filterSubject: options.filterSubject,
        maxDeliver: options.maxDeliver ?? DEFAULT_MAX_DELIVER,
        nextSequence: options.deliverNew ? stream.lastSequence + 1 : 1,
        pending: new Map(),
        waiters: new Set(),
      };
      stream.durables.set(options.durable, durable);
    } else {
      // As nats-server does for an existing durable: the filter and the delivery bound follow the
      // latest consumer, the position (and so deliverNew) stays.
      durable.filterSubject = options.filterSubject;
      durable.maxDeliver = options.maxDeliver ?? DEFAULT_MAX_DELIVER;
    }
    const ackWaitMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;
    const worker = this.workers.start((w) => this.runWorker(stream, durable, w, ackWaitMs, handler as (message: StreamMessage<unknown>) => Promise<void>));
    return {
      // After unsubscribe resolves the handler is not running and will not run again.
      unsubscribe: () => this.workers.stop(worker),
    };
  }

  private async runWorker(
    stream: MemoryStream,
    durable: DurableState,
    worker: StreamWorker,
    ackWaitMs: number,
    handler: (message: StreamMessage<unknown>) => Promise<void>,
  ): Promise<void> {
    await Promise.resolve();
    while (!worker.stopped) {
      const taken = this.take(stream, durable);
      if (!('message' in taken)) {
        // Sleep until a publish, a failure elsewhere, unsubscribe, or the earliest redelivery comes due.
        // The timer is armed here, not when the handler failed, so a timer that fires a little early
        // (timers and Date.now() are different clocks) cannot leave a redelivery stranded.
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((wake) => {
          worker.wake = wake;
          durable.waiters.add(wake);
          if (taken.wakeAt !== undefined) timer = setTimeout(wake, Math.max(1, taken.wakeAt - Date.now() + 1));
        });
        clearTimeout(timer);
        durable.waiters.delete(worker.wake as () => void);
        worker.wake = undefined;
        continue;
      }
      const { message, delivery } = taken;
      try {
        await handler({
          subject: message.subject,
          data: decodePayload(message.payload),
          headers: copyHeaders(message.headers),
          sequence: message.sequence,
          deliveryCount: delivery.deliveryCount,
        });
        durable.pending.delete(message.sequence);
      } catch {
        delivery.inFlight = false;
        if (delivery.deliveryCount >= durable.maxDeliver) {
          durable.pending.delete(message.sequence);
        } else {
          delivery.redeliverAt = Date.now() + ackWaitMs;
          // Idle workers of the durable re-arm their timers for it.
          this.wakeAll(durable);
        }
      }
    }
  }

  /**
   * The next message for this durable (a due redelivery first, then the next new one), marked in
   * flight; or, when there is none, when the earliest waiting redelivery comes due.
   */
  private take(stream: MemoryStream, durable: DurableState): { message: StoredMessage; delivery: PendingDelivery } | { wakeAt?: number } {
    const firstSequence = stream.messages.length > 0 ? stream.messages[0].sequence : stream.lastSequence + 1;
    const now = Date.now();
    let due: number | undefined;
    let wakeAt: number | undefined;
    for (const [sequence, delivery] of durable.pending) {
      if (sequence < firstSequence) {
        // Dropped from the stream by its size limit: nothing left to redeliver.
        if (!delivery.inFlight) durable.pending.delete(sequence);
        continue;
      }
      if (delivery.inFlight) continue;
      if (delivery.redeliverAt <= now) {
        if (due === undefined || sequence < due) due = sequence;
      } else if (wakeAt === undefined || delivery.redeliverAt < wakeAt) {
        wakeAt = delivery.redeliverAt;
      }
    }
    if (due !== undefined) {
      const delivery = durable.pending.get(due) as PendingDelivery;
      delivery.inFlight = true;
      delivery.deliveryCount++;
      return { message: stream.messages[due - firstSequence], delivery };
    }
    durable.nextSequence = Math.max(durable.nextSequence, firstSequence);
    while (durable.nextSequence <= stream.lastSequence) {
      const message = stream.messages[durable.nextSequence - firstSequence];
      durable.nextSequence++;
      if (durable.filterSubject !== undefined && !subjectMatches(durable.filterSubject, message.subject)) continue;
      const delivery: PendingDelivery = { deliveryCount: 1, redeliverAt: 0, inFlight: true };
      durable.pending.set(message.sequence, delivery);
      return { message, delivery };
    }
    return { wakeAt };
  }

  private wakeAll(durable: DurableState): void {
    for (const wake of [...durable.waiters]) wake();
  }

  async notify<T>(subject: string, data: T, headers?: Headers): Promise<void> {
    this.assertOpen();
    assertValidSubject(subject, false);
    this.fanOut(subject, encodePayload(data), copyHeaders(headers));
  }

  private fanOut(subject: string, payload: string, headers: Headers): void {
    for (const subscriber of this.subscribers) {
      if (!subjectMatches(subscriber.pattern, subject)) continue;
      // Delivered later, as from a socket: the sender never runs subscriber code.
      setImmediate(() => {
        if (!this.subscribers.has(subscriber)) return;
        try {
          const result: unknown = subscriber.handler({ subject, data: decodePayload(payload), headers: copyHeaders(headers) });
          if (result instanceof Promise) result.catch(() => undefined);
        } catch {
          // A subscriber's failure is its own; fan-out is fire-and-forget.
        }
      });
    }
  }

  async subscribe<T>(subject: string, handler: (message: BusMessage<T>) => void): Promise<Subscription> {
    this.assertOpen();
    assertValidSubject(subject, true);
    const subscriber = { pattern: subject, handler: handler as NotifyHandler };
    this.subscribers.add(subscriber);
    return {
      unsubscribe: async () => {
        this.subscribers.delete(subscriber);
      },
    };
  }

  async ping(): Promise<boolean> {
    return !this.closed;
  }

  /**
   * A client of this bus standing for one service, as a NATS connection is:
   * it shares the handlers, streams and durables, and its close() ends only
   * the subscriptions it made (in-flight stream handlers finish first).
   */
  client(): Bus {
    return new InProcessBusClient(this);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.subscribers.clear();
    this.handlerGroups.clear();
    await this.workers.stopAll();
  }
}

class InProcessBusClient implements Bus {
  readonly messagingSystem = 'inprocess';
  private readonly subscriptions = new Set<Subscription>();
  private closed = false;

  constructor(private readonly bus: InProcessBus) {}

  private assertOpen(): void {
    if (this.closed) throw new Error('bus client is closed');
  }

  private track(subscription: Subscription): Subscription {
    this.subscriptions.add(subscription);
    return {
      unsubscribe: async () => {
        this.subscriptions.delete(subscription);
        await subscription.unsubscribe();
      },
    };
  }

  async request<Req, Res>(subject: string, data: Req, options?: RequestOptions): Promise<Res> {
    this.assertOpen();
    return this.bus.request<Req, Res>(subject, data, options);
  }

  async handle<Req, Res>(subject: string, handler: (message: BusMessage<Req>) => Promise<Res>): Promise<Subscription> {
    this.assertOpen();
    return this.track(await this.bus.handle(subject, handler));
  }

  async ensureStream(spec: StreamSpec): Promise<void> {
    this.assertOpen();
    return this.bus.ensureStream(spec);
  }

  async publish<T>(subject: string, data: T, headers?: Headers): Promise<number> {
    this.assertOpen();
    return this.bus.publish(subject, data, headers);
  }

  async consume<T>(stream: string, options: ConsumeOptions, handler: (message: StreamMessage<T>) => Promise<void>): Promise<Subscription> {
    this.assertOpen();
    return this.track(await this.bus.consume(stream, options, handler));
  }

  async notify<T>(subject: string, data: T, headers?: Headers): Promise<void> {
    this.assertOpen();
    return this.bus.notify(subject, data, headers);
  }

  async subscribe<T>(subject: string, handler: (message: BusMessage<T>) => void): Promise<Subscription> {
    this.assertOpen();
    return this.track(await this.bus.subscribe(subject, handler));
  }

  async ping(): Promise<boolean> {
    return !this.closed && (await this.bus.ping());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const subscriptions = [...this.subscriptions];
    this.subscriptions.clear();
    await Promise.all(subscriptions.map((s) => s.unsubscribe()));
  }
}
