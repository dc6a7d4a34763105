import { randomBytes } from 'node:crypto';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';
import { SharedPerStore } from '@atrium/storage';

/**
 * Storage of federation-outbound (docs/federation-design.md "Outbound"): one
 * ordered queue per destination, persisted, so a restart loses nothing.
 *
 * - `federation_out_pdus`: one row per (destination, event); `seq` is the
 *   event's position in the room output log, which orders the queue. The
 *   PDU itself is read from `room_events` when the transaction is built (a
 *   redaction applied meanwhile is sent in its redacted form, as the spec
 *   wants servers to serve redacted events).
 * - `federation_out_edus`: one row per (destination, EDU) with a position
 *   from the `federation.edu_out` counter and the EDU as JSON text;
 *   `expires_ts` (0: never) lets typing and presence go stale instead of
 *   being delivered after a long outage.
 * - `federation_out_destinations`: per destination the retry state
 *   (`backoff_ms`, `next_attempt_ts`), the last success, and `pending` with a
 *   `mark` so a sender that found the queue empty clears `pending` only if no
 *   enqueue happened since it looked (compare-and-set on `mark`).
 * - `federation_out_cursor`: the consumer's position in the room output log.
 *
 * Rows are deleted once the destination answered 200 to the transaction that
 * carried them: at-least-once (a crash between the answer and the delete
 * sends them again, which the receiver dedupes by event ID / message ID).
 */
export interface OutPduRecord extends Doc {
  _id: string; // destination \n event_id
  destination: string;
  seq: number;
  event_id: string;
  room_id: string;
}

export interface OutEduRecord extends Doc {
  _id: string; // destination \n seq
  destination: string;
  seq: number;
  edu_type: string;
  /** The EDU content as JSON text. */
  content: string;
  /** ms since the epoch after which the EDU is not worth sending; 0 for never. */
  expires_ts: number;
}

export interface DestinationRecord extends Doc {
  _id: string; // the server name
  pending: boolean;
  /** Changes on every enqueue (see the file comment). */
  mark: string;
  backoff_ms: number;
  next_attempt_ts: number;
  retries: number;
  last_success_ts: number;
  /**
   * The rows of the transaction sent and not yet answered 200 (row IDs):
   * "The sending server must wait and retry for a 200 OK response before
   * sending a transaction with a different txnId" (transactions.yaml), so a
   * retry carries these rows again, under the same ID, and nothing newer.
   * Empty (or absent) when no transaction is outstanding.
   */
  txn_pdus?: string[];
  txn_edus?: string[];
  /**
   * Set when the queue was collapsed to the newest PDU of each room, cleared
   * by the next success: until the destination answers again, whatever is
   * queued meanwhile is collapsed too, so a returning server gets the room
   * heads and fetches the gaps itself, however its outage fell relative to
   * the retry timer.
   */
  catching_up?: boolean;
}

interface CursorRecord extends Doc {
  _id: string;
  position: number;
}

/** The last m.device_list_update stream_id sent for a local user (server-server-api "Device Management"). */
interface DeviceStreamRecord extends Doc {
  _id: string; // the user ID
  stream_id: number;
}

const CURSOR_ID = 'room_events';
const SEP = '\n';

export class OutboundStore {
  private static readonly opened = new SharedPerStore<OutboundStore>();

  private constructor(
    private readonly store: DocumentStore,
    readonly pdus: Collection<OutPduRecord>,
    readonly edus: Collection<OutEduRecord>,
    readonly destinations: Collection<DestinationRecord>,
    private readonly cursors: Collection<CursorRecord>,
    private readonly deviceStreams: Collection<DeviceStreamRecord>,
  ) {}

  static shared(store: DocumentStore): Promise<OutboundStore> {
    return OutboundStore.opened.get(store, () => OutboundStore.open(store));
  }

  static async open(store: DocumentStore): Promise<OutboundStore> {
    return new OutboundStore(
      store,
      await store.collection<OutPduRecord>({ name: 'federation_out_pdus', indexes: [{ fields: ['destination', 'seq'] }] }),
      await store.collection<OutEduRecord>({ name: 'federation_out_edus', indexes: [{ fields: ['destination', 'seq'] }] }),
      await store.collection<DestinationRecord>({ name: 'federation_out_destinations', indexes: [{ fields: ['pending', 'next_attempt_ts'] }] }),
      await store.collection<CursorRecord>({ name: 'federation_out_cursor' }),
      await store.collection<DeviceStreamRecord>({ name: 'federation_out_device_streams' }),
    );
  }

  // ---- the room output log cursor ----

  async cursor(): Promise<number> {
    return (await this.cursors.get(CURSOR_ID))?.position ?? 0;
  }

  /** Moves the cursor from `from` to `to` if nobody moved it meanwhile (compare-and-set); first use inserts it. */
  async advanceCursor(from: number, to: number): Promise<boolean> {
    if (to <= from) return false;
    if (from === 0 && (await this.cursors.insert({ _id: CURSOR_ID, position: to }))) return true;
    return this.cursors.update(CURSOR_ID, { position: to }, { position: from });
  }

  // ---- device list stream IDs ----

  /**
   * The `stream_id` and `prev_id` of the next m.device_list_update of a
   * local user: "stream_id: An ID sent by the sending server for this update
   * … must be increasing"; "prev_id: The stream_ids of any prior
   * m.device_list_update EDUs sent for this user which have not been referred
   * to already in an EDU's prev_id field" (one update refers to the one
   * before it, so that is the previous ID). EDUs are consumed in order from
   * one durable stream, so updates of one user do not race here.
   */
  async nextDeviceListIds(userId: string): Promise<{ streamId: number; prevIds: number[] }> {
    const previous = await this.deviceStreams.get(userId);
    const streamId = await this.store.nextSequence('federation.device_list_stream');
    await this.deviceStreams.put({ _id: userId, stream_id: streamId });
    return { streamId, prevIds: previous ? [previous.stream_id] : [] };
  }

  /**
   * The `stream_id` of the last m.device_list_update given out for a local
   * user (0 before the first): what `GET /user/devices/{userId}` answers as
   * `stream_id` (user_devices.yaml: "matched with the stream_id field in
   * m.device_list_update EDUs"), so a server that fetched the list applies
   * the next EDU, whose prev_id is this ID, without resynchronising.
   */
  async deviceListStreamId(userId: string): Promise<number> {
    return (await this.deviceStreams.get(userId))?.stream_id ?? 0;
  }

  // ---- enqueueing ----

  /** Queues PDUs (idempotent: a replayed row is skipped) and marks their destinations pending. */
  async enqueuePdus(rows: ReadonlyArray<{ destination: string; seq: number; eventId: string; roomId: string }>): Promise<void> {
    if (rows.length === 0) return;
    await this.pdus.insertMany(rows.map((r) => ({ _id: `${r.destination}${SEP}${r.eventId}`, destination: r.destination, seq: r.seq, event_id: r.eventId, room_id: r.roomId })));
    await this.markPending([...new Set(rows.map((r) => r.destination))]);
  }

  /** Queues one EDU for each destination. */
  async enqueueEdu(destinations: readonly string[], eduType: string, content: unknown, expiresTs: number): Promise<void> {
    if (destinations.length === 0) return;
    const seq = await this.store.nextSequence('federation.edu_out');
    const json = JSON.stringify(content);
    await this.edus.insertMany(destinations.map((d) => ({ _id: `${d}${SEP}${seq}`, destination: d, seq, edu_type: eduType, content: json, expires_ts: expiresTs })));
    await this.markPending(destinations);
  }

  private async markPending(destinations: readonly string[]): Promise<void> {
    for (const destination of destinations) {
      const mark = randomBytes(8).toString('hex');
      if (await this.destinations.update(destination, { pending: true, mark })) continue;
      const inserted = await this.destinations.insert({ _id: destination, pending: true, mark, backoff_ms: 0, next_attempt_ts: 0, retries: 0, last_success_ts: 0 });
      if (!inserted) await this.destinations.update(destination, { pending: true, mark });
    }
  }

  // ---- sending ----

  /** Destinations with queued work whose backoff has passed. */
  due(now: number, limit: number): Promise<DestinationRecord[]> {
    return this.destinations.find({ pending: true, next_attempt_ts: { $lte: now } }, { sort: { next_attempt_ts: 1 }, limit });
  }

  /**
   * The rows of the next transaction to a destination: those of its
   * outstanding transaction when there is one (rows dropped since, by the
   * catch-up or an expiry, left out), else its oldest PDU and EDU rows,
   * which become the outstanding transaction (see DestinationRecord.txn_pdus).
   */
  async head(state: DestinationRecord, maxPdus: number, maxEdus: number): Promise<{ pdus: OutPduRecord[]; edus: OutEduRecord[] }> {
    const destination = state._id;
    const bySeq = (a: { seq: number }, b: { seq: number }): number => a.seq - b.seq;
    if ((state.txn_pdus?.length ?? 0) > 0 || (state.txn_edus?.length ?? 0) > 0) {
      const [pdus, edus] = await Promise.all([this.pdus.getMany(state.txn_pdus ?? []), this.edus.getMany(state.txn_edus ?? [])]);
      return { pdus: pdus.sort(bySeq), edus: edus.sort(bySeq) };
    }
    const [pdus, edus] = await Promise.all([
      this.pdus.find({ destination }, { sort: { seq: 1 }, limit: maxPdus }),
      this.edus.find({ destination }, { sort: { seq: 1 }, limit: maxEdus }),
    ]);
    if (pdus.length > 0 || edus.length > 0) await this.destinations.update(destination, { txn_pdus: pdus.map((r) => r._id), txn_edus: edus.map((r) => r._id) });
    return { pdus, edus };
  }

  /** The outstanding transaction is done with (answered 200, or refused for good): its rows go. */
  async finish(destination: string, pdus: readonly OutPduRecord[], edus: readonly OutEduRecord[]): Promise<void> {
    await this.remove(pdus, edus);
    await this.destinations.update(destination, { txn_pdus: [], txn_edus: [] });
  }

  async remove(pdus: readonly OutPduRecord[], edus: readonly OutEduRecord[]): Promise<void> {
    // One delete per collection (FerretDB 1.x scans a collection per lookup by key); a crash in between resends the rest (at-least-once).
    if (pdus.length > 0) await this.pdus.deleteMany({ _id: { $in: pdus.map((r) => r._id) } });
    if (edus.length > 0) await this.edus.deleteMany({ _id: { $in: edus.map((r) => r._id) } });
  }

  async depth(destination: string): Promise<number> {
    const [p, e] = await Promise.all([this.pdus.count({ destination }), this.edus.count({ destination })]);
    return p + e;
  }

  /**
   * Catch-up after a long outage (server-server-api "Transactions": the
   * receiver fetches what it lacks with /get_missing_events from the latest
   * events): keeps only the newest queued PDU of each room. Returns how many
   * rows it dropped.
   */
  async collapseToLatestPerRoom(destination: string): Promise<number> {
    const rows = await this.pdus.find({ destination }, { sort: { seq: -1 } });
    const seen = new Set<string>();
    const older: string[] = [];
    for (const row of rows) {
      if (seen.has(row.room_id)) older.push(row._id);
      else seen.add(row.room_id);
    }
    await this.destinations.update(destination, { catching_up: true });
    return older.length > 0 ? this.pdus.deleteMany({ _id: { $in: older } }) : 0;
  }

  /** Clears `pending` if nothing was enqueued since `mark` was read. */
  clearPending(destination: string, mark: string): Promise<boolean> {
    return this.destinations.update(destination, { pending: false }, { mark });
  }

  async succeeded(destination: string, now: number): Promise<void> {
    await this.destinations.update(destination, { backoff_ms: 0, next_attempt_ts: 0, retries: 0, last_success_ts: now, catching_up: false });
  }

  /** Records a failed attempt: "exponential backoff" from 1 s doubling to `maxMs`. Returns the new backoff. */
  async failed(destination: string, now: number, minMs: number, maxMs: number): Promise<number> {
    const current = await this.destinations.get(destination);
    const backoff = current && current.backoff_ms > 0 ? Math.min(current.backoff_ms * 2, maxMs) : minMs;
    await this.destinations.update(destination, { backoff_ms: backoff, next_attempt_ts: now + backoff, retries: (current?.retries ?? 0) + 1 });
    return backoff;
  }

  /** Makes a destination due now (it was seen online again, e.g. it sent us a transaction). */
  async wakeDestination(destination: string): Promise<boolean> {
    return this.destinations.update(destination, { next_attempt_ts: 0, backoff_ms: 0 }, { backoff_ms: { $gt: 0 } });
  }
}
