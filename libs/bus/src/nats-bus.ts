/**
 * The bus of the cluster mode, on NATS (core for RPC and fan-out, JetStream
 * for durable streams). See port.ts for the semantics both adapters share.
 *
 * - request/handle: every handler of a subject joins the queue group named
 *   after the subject, so each request reaches one of them. A handler's error
 *   travels back as a reply with the `Atrium-Bus-Error` header and a JSON
 *   { message, code, details } body.
 * - streams: file storage; consumers are durable pull consumers with explicit
 *   acks. Each worker pulls one message at a time, so consumers sharing a
 *   durable split the work and a stopped worker holds nothing back.
 */
import {
  AckPolicy,
  DeliverPolicy,
  ErrorCode,
  NatsError,
  StorageType,
  connect,
  headers as createNatsHeaders,
  nanos,
  type ConsumerConfig,
  type ConsumerMessages,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  type Subscription as NatsSubscription,
} from 'nats';
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
import {
  DEFAULT_ACK_WAIT_MS,
  DEFAULT_MAX_DELIVER,
  DEFAULT_REQUEST_TIMEOUT_MS,
  decodePayload,
  describeHandlerError,
  encodePayload,
  remoteError,
  type RemoteErrorBody,
} from './wire';
import { StreamWorkers, type StreamWorker } from './workers';

/** Reply header marking a handler's error (the body is then a RemoteErrorBody). */
export const BUS_ERROR_HEADER = 'Atrium-Bus-Error';

const DEFAULT_STREAM_ACK_WAIT_MS = 30_000;
/** Lifetime of one pull request; a stopping worker waits at most this long. */
const PULL_EXPIRES_MS = 1_000;
/** Pause after a failed pull (server restarting, consumer being created elsewhere). */
const PULL_RETRY_MS = 500;

/** JetStream API error codes (nats-server's errors.json). */
const JS_STREAM_NOT_FOUND = 10059;
const JS_STREAM_NAME_IN_USE = 10058;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface NatsBusOptions {
  /** Connection name shown by the server (e.g. the service name). */
  name?: string;
  /**
   * How long the server waits for an ack before giving a message to another
   * worker, i.e. how soon the work of a process that died is redelivered
   * (default 30 s; set on durables this bus creates). A live worker extends
   * it with `working()` while its handler runs, so a slow handler is not
   * redelivered behind its back.
   */
  streamAckWaitMs?: number;
}

function apiErrorCode(error: unknown): number | undefined {
  return error instanceof NatsError ? error.api_error?.err_code : undefined;
}

function toNatsHeaders(headers: Headers | undefined): MsgHdrs | undefined {
  if (!headers || Object.keys(headers).length === 0) return undefined;
  const out = createNatsHeaders();
  for (const [key, value] of Object.entries(headers)) out.set(key, value);
  return out;
}

function fromNatsHeaders(headers: MsgHdrs | undefined): Headers {
  const out: Headers = {};
  if (!headers) return out;
  for (const [key, values] of headers) {
    if (values.length > 0) out[key] = values[values.length - 1];
  }
  return out;
}

function decode<T>(data: Uint8Array): T {
  return decodePayload<T>(decoder.decode(data));
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

export class NatsBus implements Bus {
  readonly messagingSystem = 'nats';
  private readonly js: JetStreamClient;
  private readonly handlerSubscriptions = new Set<NatsSubscription>();
  private readonly inFlightHandlers = new Set<Promise<void>>();
  private readonly workers = new StreamWorkers();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly nc: NatsConnection,
    private readonly jsm: JetStreamManager,
    private readonly streamAckWaitMs: number,
  ) {
    this.js = nc.jetstream();
  }

  /** Connects to the servers of a URL such as `nats://a:4222,b:4222` (or a list). */
  static async connect(servers: string | string[], options: NatsBusOptions = {}): Promise<NatsBus> {
    const list = (Array.isArray(servers) ? servers : servers.split(',')).map((s) => s.trim()).filter((s) => s !== '');
    const nc = await connect({ servers: list, name: options.name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
    try {
      return new NatsBus(nc, await nc.jetstreamManager(), options.streamAckWaitMs ?? DEFAULT_STREAM_ACK_WAIT_MS);
    } catch (error) {
      await nc.close();
      throw error;
    }
  }

  async request<Req, Res>(subject: string, data: Req, options: RequestOptions = {}): Promise<Res> {
    let reply: Msg;
    try {
      reply = await this.nc.request(subject, encoder.encode(encodePayload(data)), {
        timeout: options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS,
        headers: toNatsHeaders(options.headers),
      });
    } catch (error) {
      // No subscriber answers at once with "no responders" (503); both mean nobody answered.
      if (error instanceof NatsError && (error.code === ErrorCode.NoResponders || error.code === ErrorCode.Timeout)) throw new BusTimeoutError(subject);
      throw error;
    }
    if (reply.headers?.has(BUS_ERROR_HEADER)) throw remoteError(decode<RemoteErrorBody>(reply.data));
    return decode<Res>(reply.data);
  }

  async handle<Req, Res>(subject: string, handler: (message: BusMessage<Req>) => Promise<Res>): Promise<Subscription> {
    const subscription = this.nc.subscribe(subject, {
      queue: subject,
      callback: (error, msg) => {
        if (error) return;
        const work = this.answer(msg, handler);
        this.inFlightHandlers.add(work);
        void work.finally(() => this.inFlightHandlers.delete(work));
      },
    });
    this.handlerSubscriptions.add(subscription);
    // The subscription must reach the server before a request may count on it.
    await this.nc.flush();
    return {
      unsubscribe: async () => {
        this.handlerSubscriptions.delete(subscription);
        if (!subscription.isClosed()) await subscription.drain();
      },
    };
  }

  private async answer<Req, Res>(msg: Msg, handler: (message: BusMessage<Req>) => Promise<Res>): Promise<void> {
    let body: string;
    let replyHeaders: MsgHdrs | undefined;
    try {
      body = encodePayload(await handler({ subject: msg.subject, data: decode<Req>(msg.data), headers: fromNatsHeaders(msg.headers) }));
    } catch (error) {
      body = JSON.stringify(describeHandlerError(error));
      replyHeaders = createNatsHeaders();
      replyHeaders.set(BUS_ERROR_HEADER, '1');
    }
    if (!msg.reply || this.nc.isClosed()) return;
    try {
      msg.respond(encoder.encode(body), { headers: replyHeaders });
    } catch {
      // The connection closed under us; the caller times out.
    }
  }

  async ensureStream(spec: StreamSpec): Promise<void> {
    // Several processes call this at start-up; a lost race to create is retried as an update.
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const info = await this.jsm.streams.info(spec.name);
        const current = [...(info.config.subjects ?? [])].sort();
        const wanted = [...spec.subjects].sort();
        if (current.join(' ') !== wanted.join(' ')) await this.jsm.streams.update(spec.name, { ...info.config, subjects: spec.subjects });
        return;
      } catch (error) {
        if (apiErrorCode(error) !== JS_STREAM_NOT_FOUND) throw error;
      }
      try {
        await this.jsm.streams.add({ name: spec.name, subjects: spec.subjects, storage: StorageType.File });
        return;
      } catch (error) {
        if (apiErrorCode(error) !== JS_STREAM_NAME_IN_USE) throw error;
      }
    }
    throw new Error(`could not create or update stream ${spec.name}`);
  }

  async publish<T>(subject: string, data: T, headers?: Headers): Promise<number> {
    try {
      const ack = await this.js.publish(subject, encoder.encode(encodePayload(data)), { headers: toNatsHeaders(headers) });
      return ack.seq;
    } catch (error) {
      if (error instanceof NatsError && error.code === ErrorCode.NoResponders) throw new Error(`no stream captures subject ${subject}`);
      throw error;
    }
  }

  async consume<T>(stream: string, options: ConsumeOptions, handler: (message: StreamMessage<T>) => Promise<void>): Promise<Subscription> {
    await this.ensureConsumer(stream, options);
    const consumer = await this.js.consumers.get(stream, options.durable);
    const retryDelayMs = options.ackWaitMs ?? DEFAULT_ACK_WAIT_MS;

    const run = async (worker: StreamWorker): Promise<void> => {
      while (!worker.stopped) {
        let batch: ConsumerMessages;
        try {
          batch = await consumer.fetch({ max_messages: 1, expires: PULL_EXPIRES_MS });
        } catch {
          if (worker.stopped || this.nc.isClosed()) return;
          await new Promise<void>((wake) => {
            worker.wake = wake;
            setTimeout(wake, PULL_RETRY_MS);
          });
          continue;
        }
        try {
          for await (const msg of batch) {
            if (worker.stopped) {
              // Pulled while stopping: hand it straight back rather than hold it for the ack wait.
              msg.nak();
              continue;
            }
            await this.process(msg, handler, retryDelayMs);
          }
        } catch {
          // The pull ended badly (consumer deleted, connection lost): pause, then pull again.
          if (!worker.stopped) await sleep(PULL_RETRY_MS);
        }
      }
    };
    const worker = this.workers.start(run);
    return {
      unsubscribe: async () => {
        await this.workers.stop(worker);
        // Acks and naks are fire-and-forget: make sure the server has them before the caller goes on.
        if (!this.nc.isClosed()) await this.nc.flush();
      },
    };
  }

  private async ensureConsumer(stream: string, options: ConsumeOptions): Promise<void> {
    const config: Partial<ConsumerConfig> = {
      durable_name: options.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: options.deliverNew ? DeliverPolicy.New : DeliverPolicy.All,
      ack_wait: nanos(this.streamAckWaitMs),
      max_deliver: options.maxDeliver ?? DEFAULT_MAX_DELIVER,
    };
    if (options.filterSubject !== undefined) config.filter_subject = options.filterSubject;
    try {
      // On an existing durable nats-server 2.9 treats this as an update: the filter and max_deliver
      // change, while a different deliver_policy is refused (err 10012) and the durable stays as it is.
      await this.jsm.consumers.add(stream, config);
    } catch (error) {
      // Only a durable that does not exist at all is a failure.
      try {
        await this.jsm.consumers.info(stream, options.durable);
      } catch {
        throw error;
      }
    }
  }

  private async process<T>(msg: JsMsg, handler: (message: StreamMessage<T>) => Promise<void>, retryDelayMs: number): Promise<void> {
    const working = setInterval(() => msg.working(), Math.max(100, Math.floor(this.streamAckWaitMs / 3)));
    try {
      await handler({
        subject: msg.subject,
        data: decode<T>(msg.data),
        headers: fromNatsHeaders(msg.headers),
        sequence: msg.seq,
        deliveryCount: msg.info.redeliveryCount,
      });
      msg.ack();
    } catch {
      msg.nak(retryDelayMs);
    } finally {
      clearInterval(working);
    }
  }

  async notify<T>(subject: string, data: T, headers?: Headers): Promise<void> {
    this.nc.publish(subject, encoder.encode(encodePayload(data)), { headers: toNatsHeaders(headers) });
  }

  async subscribe<T>(subject: string, handler: (message: BusMessage<T>) => void): Promise<Subscription> {
    const subscription = this.nc.subscribe(subject, {
      callback: (error, msg) => {
        if (error) return;
        try {
          const result: unknown = handler({ subject: msg.subject, data: decode<T>(msg.data), headers: fromNatsHeaders(msg.headers) });
          if (result instanceof Promise) result.catch(() => undefined);
        } catch {
          // A subscriber's failure is its own; fan-out is fire-and-forget.
        }
      },
    });
    // Interest must reach the server before the caller relies on receiving.
    await this.nc.flush();
    return {
      unsubscribe: async () => {
        if (!subscription.isClosed()) subscription.unsubscribe();
      },
    };
  }

  async ping(): Promise<boolean> {
    if (this.nc.isClosed()) return false;
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        this.nc.rtt().then(() => true),
        new Promise<boolean>((done) => {
          timer = setTimeout(() => done(false), 2_000);
        }),
      ]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    if (this.nc.isClosed()) return;
    // Stream workers first (their in-flight handlers finish and ack), then
    // request handlers (stop taking requests, answer the ones taken), then the
    // connection, which drains whatever is left.
    await this.workers.stopAll();
    await Promise.all([...this.handlerSubscriptions].map((s) => (s.isClosed() ? undefined : s.drain())));
    await Promise.all([...this.inFlightHandlers]);
    if (!this.nc.isClosed()) await this.nc.drain();
  }
}
