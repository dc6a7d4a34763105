import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { USER_DATA_STREAMS, type StreamPositionSource, type WakeSync } from './streams';

/**
 * Send-to-device messages (client-server-api "Send-to-Device messaging").
 *
 * "Servers should store pending messages for local users until they are
 * successfully delivered to the destination device": one document per
 * (target device, sending transaction), with the message content as a string
 * and the position of its request on the `to_device` stream.
 *
 * Each device's messages are a queue read in arrival order, at most 100 per
 * /sync ("100 messages is recommended as a reasonable limit"). A message
 * handed out in a response is marked with that response's to_device position
 * (`sent_in`, set once); when the client comes back with a token at or past
 * it, the message was received and is deleted ("the server should infer that
 * any send-to-device messages in that response have been delivered
 * successfully, and delete them"). A client retrying with an older token gets
 * the unconfirmed messages again; messages beyond the limit wait for the next
 * sync whatever its token says, so the limit never loses one.
 */
export interface ToDeviceRecord extends Doc {
  _id: string; // user_id \n device_id \n sender \n sender_device \n txn_id
  user_id: string;
  device_id: string;
  sender: string;
  type: string;
  content: string;
  stream: number;
  /** The to_device position of the first response that carried it; 0 until then. */
  sent_in: number;
}

/**
 * A sending transaction, kept after its messages are delivered and deleted:
 * "Clients should generate an ID unique across requests with the same access
 * token; it will be used by the server to ensure idempotency of requests".
 */
interface ToDeviceTxnRecord extends Doc {
  _id: string; // sender \n sender_device \n txn_id
  stream: number;
  ts: number;
}

export interface ToDeviceEvent {
  sender: string;
  type: string;
  content: Record<string, unknown>;
}

/** One message to one device of a local user. */
export interface ToDeviceDelivery {
  userId: string;
  deviceId: string;
  content: Record<string, unknown>;
}

/** "100 messages is recommended as a reasonable limit" per /sync response. */
export const TO_DEVICE_SYNC_LIMIT = 100;

/**
 * How long a sending transaction is remembered. Clients retry a failed
 * request within seconds or minutes; a day is far beyond any retry, and
 * forgetting keeps the collection from growing forever.
 */
export const TO_DEVICE_TXN_RETENTION_MS = 24 * 3600 * 1000;
/** A process prunes old transactions at most this often (on a send). */
const TXN_PRUNE_INTERVAL_MS = 3600 * 1000;

export class ToDeviceStore {
  private constructor(
    private readonly messages: Collection<ToDeviceRecord>,
    private readonly txns: Collection<ToDeviceTxnRecord>,
    private readonly positions: StreamPositionSource,
    private readonly wake: WakeSync,
    private readonly now: () => number,
  ) {}

  private lastPrune = 0;

  static async open(store: DocumentStore, positions: StreamPositionSource, wake: WakeSync, now: () => number = Date.now): Promise<ToDeviceStore> {
    const messages = await store.collection<ToDeviceRecord>({
      name: 'to_device_messages',
      indexes: [{ fields: ['user_id', 'device_id', 'stream'] }],
    });
    const txns = await store.collection<ToDeviceTxnRecord>({ name: 'to_device_txns', indexes: [{ fields: ['ts'] }] });
    return new ToDeviceStore(messages, txns, positions, wake, now);
  }

  /**
   * Stores the messages of one sendToDevice request under one position.
   * Returns false (and stores nothing) for a transaction already sent. The
   * message IDs derive from the transaction, so a retry after a crash between
   * the messages and the transaction record duplicates nothing.
   */
  async send(sender: string, senderDevice: string, txnId: string, type: string, deliveries: ToDeviceDelivery[]): Promise<boolean> {
    const txnKey = `${sender}\n${senderDevice}\n${txnId}`;
    if (await this.txns.get(txnKey)) return false;
    const position = await this.positions.withPosition(USER_DATA_STREAMS.toDevice, async (position) => {
      for (const d of deliveries) {
        await this.messages.insert({
          _id: `${d.userId}\n${d.deviceId}\n${txnKey}`,
          user_id: d.userId,
          device_id: d.deviceId,
          sender,
          type,
          content: JSON.stringify(d.content),
          stream: position,
          sent_in: 0,
        });
      }
      return position;
    });
    await this.txns.insert({ _id: txnKey, stream: position, ts: this.now() });
    await this.pruneTransactions();
    if (deliveries.length > 0) {
      await this.wake({ stream: USER_DATA_STREAMS.toDevice, position, user_ids: [...new Set(deliveries.map((d) => d.userId))] });
    }
    return true;
  }

  /**
   * One /sync's to-device part for a device: first deletes what the client
   * confirmed (messages sent in a response at or before `confirmed`, the
   * `since` token's position), then hands out the oldest pending messages
   * with a position up to `upTo` (the response's position), at most `limit`,
   * marking those handed out for the first time with `upTo`.
   */
  async deliver(userId: string, deviceId: string, confirmed: number, upTo: number, limit = TO_DEVICE_SYNC_LIMIT): Promise<ToDeviceEvent[]> {
    if (confirmed > 0) await this.messages.deleteMany({ user_id: userId, device_id: deviceId, sent_in: { $gt: 0, $lte: confirmed } });
    const records = await this.messages.find({ user_id: userId, device_id: deviceId, stream: { $lte: upTo } }, { sort: { stream: 1 }, limit });
    for (const record of records) {
      if (record.sent_in === 0) await this.messages.update(record._id, { sent_in: upTo }, { sent_in: 0 });
    }
    return records.map((r) => ({ sender: r.sender, type: r.type, content: JSON.parse(r.content) as Record<string, unknown> }));
  }

  /**
   * Messages for a device with a position after `after`, oldest first, at most
   * `limit`, without deleting or marking anything: MSC3814's
   * `POST /dehydrated_device/{device_id}/events` must "not delete any
   * to-device messages delivered in previous batches". `last` is the position
   * of the last message answered (`after` when none). A sendToDevice request
   * or an m.direct_to_device EDU gives one device at most one message per
   * position, so a position is a safe batch boundary.
   */
  async peek(userId: string, deviceId: string, after: number, limit = TO_DEVICE_SYNC_LIMIT): Promise<{ events: ToDeviceEvent[]; last: number }> {
    const records = await this.messages.find({ user_id: userId, device_id: deviceId, stream: { $gt: after } }, { sort: { stream: 1 }, limit });
    return {
      events: records.map((r) => ({ sender: r.sender, type: r.type, content: JSON.parse(r.content) as Record<string, unknown> })),
      last: records.length > 0 ? records[records.length - 1].stream : after,
    };
  }

  /** How many messages wait for a device (tests and metrics). */
  pendingCount(userId: string, deviceId: string): Promise<number> {
    return this.messages.count({ user_id: userId, device_id: deviceId });
  }

  /** Forgets transactions older than TO_DEVICE_TXN_RETENTION_MS, at most once per TXN_PRUNE_INTERVAL_MS per process. */
  async pruneTransactions(force = false): Promise<number> {
    const now = this.now();
    if (!force && now - this.lastPrune < TXN_PRUNE_INTERVAL_MS) return 0;
    this.lastPrune = now;
    return this.txns.deleteMany({ ts: { $lt: now - TO_DEVICE_TXN_RETENTION_MS } });
  }

  safePosition(): Promise<number> {
    return this.positions.safePosition(USER_DATA_STREAMS.toDevice);
  }
}
