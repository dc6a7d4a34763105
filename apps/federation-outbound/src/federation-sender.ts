import { createHash, randomBytes } from 'node:crypto';
import { TraceFlags, type Link } from '@opentelemetry/api';
import type { Bus, Subscription } from '@atrium/bus';
import type { Cache } from '@atrium/cache';
import {
  FEDERATION_ORIGIN_SEEN_SUBJECT,
  FederationHttpError,
  OUTGOING_EDU_STREAM,
  OUTGOING_EDU_SUBJECT,
  type FederationClient,
  type FederationOriginSeen,
  type OutgoingEdu,
} from '@atrium/federation-client';
import { domainOfId, toWirePdu, getRoomVersion, type JsonObject, type RoomVersion } from '@atrium/matrix';
import { eventOf, EVENTS_STREAM, RoomStore, SYNC_WAKE_SUBJECT, type EventRecord, type SyncWake } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import type { Telemetry } from '@atrium/telemetry';
import { OutboundStore, type DestinationRecord, type OutEduRecord, type OutPduRecord } from './outbound-store';
import { destinationsOf, RoomMembersAt } from './room-members-at';

/** server-server-api "Transactions": "A transaction … up to 50 PDUs and 100 EDUs". */
export const MAX_PDUS_PER_TXN = 50;
export const MAX_EDUS_PER_TXN = 100;
/** Room output log events read per batch, and batches per run (bounded loops). */
const LOG_BATCH = 200;
const MAX_LOG_BATCHES_PER_RUN = 20;
/** Transactions sent to one destination per claim before giving others a turn. */
const MAX_TXNS_PER_CLAIM = 20;
/** Destinations served at once by one process. */
const MAX_DESTINATIONS_IN_FLIGHT = 32;
/** Queued PDUs beyond which a returning destination gets only the newest event of each room (catch-up). */
export const CATCH_UP_THRESHOLD = 500;
/** The shared-cache key of the claim on walking the room output log. */
const LOG_LEASE = 'fedout:log';
/** How long EDUs that are only worth something fresh wait in a queue. */
const EDU_TTL_MS: Record<string, number> = { 'm.typing': 60_000, 'm.presence': 15 * 60_000 };

export interface FederationSenderOptions {
  store: DocumentStore;
  bus: Bus;
  /** The shared cache holding the claims (leases) of the log and of each destination across replicas. */
  cache: Cache;
  telemetry: Telemetry;
  serverName: string;
  /** Null until the transport is wired: the queues fill and nothing is sent. */
  client: FederationClient | null;
  /** First backoff and its cap (design: 1 s doubling to 1 h). */
  minBackoffMs?: number;
  maxBackoffMs?: number;
  /** How often the log and the queues are looked at without a wake-up. */
  pollMs?: number;
  /** Lease lifetime; renewed after each transaction. */
  leaseMs?: number;
  /** Queued PDUs beyond which a returning destination gets the newest event of each room only (default CATCH_UP_THRESHOLD). */
  catchUpThreshold?: number;
  /** Per-request deadline of PUT /send. */
  requestTimeoutMs?: number;
  now?: () => number;
}

type EduDestinationsResolver = (edu: OutgoingEdu) => Promise<string[]>;

/**
 * federation-outbound (docs/federation-design.md "Outbound"):
 *
 * 1. The room output log is read from a stored cursor (like push-gateway's
 *    consumer: `allEventsBetween` up to the events stream's safe position,
 *    woken by `sync.wake` for the events stream, polled as a fallback). Each
 *    event sent by a local user (not an outlier, not rejected) is queued for
 *    the servers in the room at that event. One replica walks the log at a
 *    time (a lease in the shared cache); the cursor moves by compare-and-set
 *    after the rows are written, so a crash replays (queue rows are keyed by
 *    destination and event: a replay adds nothing).
 * 2. EDUs from OUTGOING_EDU_STREAM are queued for their destinations.
 * 3. Each destination with queued work and no backoff pending is claimed
 *    (lease `fedout:dest:<name>`), so one replica sends to it, one
 *    transaction at a time, oldest rows first: PUT /_matrix/federation/v1/send/{txnId}
 *    with ≤50 PDUs and ≤100 EDUs. On 200 the rows go and the backoff resets;
 *    on failure the destination waits 1 s, 2 s, 4 s … up to 1 h. A
 *    destination that was away long enough to queue more than
 *    CATCH_UP_THRESHOLD PDUs gets the newest event of each room only.
 *
 * A transaction's rows are recorded on the destination when it is first
 * sent, and every retry carries those rows again under the same ID until it
 * is answered 200 ("The sending server must wait and retry for a 200 OK
 * response before sending a transaction with a different txnId",
 * transactions.yaml). The ID is a hash of those row IDs, so different rows
 * never share one.
 */
export class FederationSender {
  private outbound?: OutboundStore;
  private rooms?: RoomStore;
  private members?: RoomMembersAt;
  private readonly subscriptions: Subscription[] = [];
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private logRunning = false;
  /** The runs in progress, awaited by stop() so nothing touches storage after it. */
  private logRun: Promise<void> = Promise.resolve();
  private sendRun: Promise<void> = Promise.resolve();
  private readonly eduWork = new Set<Promise<void>>();
  private logAgain = false;
  private sendRunning = false;
  private sendAgain = false;
  /** Where this process's last walk of the log stopped (its membership memory is valid from there). */
  private lastCursor = -1;
  private readonly active = new Map<string, Promise<void>>();
  private readonly versions = new Map<string, RoomVersion>();
  private readonly instance = randomBytes(8).toString('hex');
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly pollMs: number;
  private readonly leaseMs: number;
  private readonly now: () => number;
  private readonly metrics;
  private resolveEduDestinations: EduDestinationsResolver = (edu) => this.defaultEduDestinations(edu);

  constructor(private readonly options: FederationSenderOptions) {
    this.minBackoffMs = options.minBackoffMs ?? 1000;
    this.maxBackoffMs = options.maxBackoffMs ?? 3600_000;
    this.pollMs = options.pollMs ?? 1000;
    this.leaseMs = options.leaseMs ?? 120_000;
    this.now = options.now ?? Date.now;
    const m = options.telemetry.metrics;
    this.metrics = {
      depth: m.gauge('federation_queue_depth', 'PDUs and EDUs queued for a destination', ['destination']),
      retries: m.counter('federation_retries_total', 'Failed transaction attempts to a destination (each is retried after a backoff)', ['destination']),
      lastSuccess: m.gauge('federation_last_success_timestamp_seconds', 'When a destination last accepted a transaction (Unix seconds)', ['destination']),
      transactions: m.counter('federation_transactions_total', 'Outgoing transactions by outcome (sent, failed, dropped)', ['outcome']),
    };
  }

  private isLocal(userId: string): boolean {
    return domainOfId(userId) === this.options.serverName;
  }

  async start(): Promise<void> {
    const { store, bus } = this.options;
    this.outbound = await OutboundStore.shared(store);
    this.rooms = await RoomStore.open(store);
    this.members = new RoomMembersAt(this.rooms);
    this.subscriptions.push(
      await bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (message) => {
        if (message.data?.stream === EVENTS_STREAM) void this.drainLog();
      }),
    );
    this.subscriptions.push(
      await bus.subscribe<FederationOriginSeen>(FEDERATION_ORIGIN_SEEN_SUBJECT, (message) => {
        if (typeof message.data?.server_name === 'string') void this.destinationSeen(message.data.server_name);
      }),
    );
    await bus.ensureStream({ name: OUTGOING_EDU_STREAM, subjects: [OUTGOING_EDU_SUBJECT] });
    this.subscriptions.push(
      await bus.consume<OutgoingEdu>(OUTGOING_EDU_STREAM, { durable: 'federation-outbound-edus', filterSubject: OUTGOING_EDU_SUBJECT }, async (message) => {
        // After stop(), throwing leaves the message to be redelivered (to another replica, or after a restart).
        if (this.stopped) throw new Error('federation-outbound is stopping');
        const work = this.enqueueEdu(message.data);
        this.eduWork.add(work);
        try {
          await work;
        } finally {
          this.eduWork.delete(work);
        }
      }),
    );
    this.timer = setInterval(() => {
      void this.drainLog();
      void this.sendDue();
    }, this.pollMs);
    this.timer.unref();
    void this.drainLog();
    void this.sendDue();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    for (const s of this.subscriptions.splice(0)) await s.unsubscribe();
    let timeout: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.allSettled([this.logRun, this.sendRun, ...this.eduWork, ...this.active.values()]),
      new Promise((resolve) => (timeout = setTimeout(resolve, 5000))),
    ]);
    clearTimeout(timeout);
    // Another replica takes over the log at once rather than when the lease runs out.
    if (!this.logRunning) await this.release(LOG_LEASE);
  }

  // ---- leases (the shared cache, as room-server's room lease) ----

  private async claim(key: string): Promise<boolean> {
    const cache = this.options.cache;
    if (await cache.setIfAbsent(key, this.instance, this.leaseMs)) return true;
    return (await cache.get(key)) === this.instance;
  }

  private async renew(key: string): Promise<boolean> {
    const cache = this.options.cache;
    if ((await cache.get(key)) !== this.instance) return false;
    await cache.set(key, this.instance, this.leaseMs);
    return true;
  }

  private async release(key: string): Promise<void> {
    const cache = this.options.cache;
    if ((await cache.get(key)) === this.instance) await cache.delete(key);
  }

  // ---- 1. the room output log ----

  /** Walks the log up to the safe position; concurrent calls fold into one more round. */
  drainLog(): Promise<void> {
    if (this.logRunning) {
      this.logAgain = true;
      return this.logRun;
    }
    this.logRunning = true;
    this.logRun = this.runLog();
    return this.logRun;
  }

  private async runLog(): Promise<void> {
    const lease = LOG_LEASE;
    try {
      if (!(await this.claim(lease))) return;
      for (let round = 0; round < 10 && !this.stopped; round++) {
        this.logAgain = false;
        await this.runLogBatches(lease);
        if (!this.logAgain) break;
      }
    } catch (err) {
      this.options.telemetry.logger.warn({ err: (err as Error).message }, 'federation-outbound: reading the room log failed');
    } finally {
      this.logRunning = false;
    }
  }

  private async runLogBatches(lease: string): Promise<void> {
    const outbound = this.outbound;
    const rooms = this.rooms;
    const members = this.members;
    if (!outbound || !rooms || !members) return;
    for (let i = 0; i < MAX_LOG_BATCHES_PER_RUN && !this.stopped; i++) {
      const from = await outbound.cursor();
      if (from !== this.lastCursor) members.reset();
      const safe = await rooms.safeStreamPosition();
      if (safe <= from) return;
      const batch = await rooms.allEventsBetween(from, safe, LOG_BATCH);
      const rows: Array<{ destination: string; seq: number; eventId: string; roomId: string }> = [];
      for (const record of batch) {
        if (this.isLocal(record.sender) && !isOutlierOrRejected(record)) {
          const before = await members.before(record);
          for (const destination of destinationsOf(record, before, this.options.serverName)) {
            rows.push({ destination, seq: record.stream, eventId: record._id, roomId: record.room_id });
          }
        }
        if (!isOutlierOrRejected(record)) members.apply(record);
      }
      await outbound.enqueuePdus(rows);
      await this.updateDepths(rows.map((r) => r.destination));
      const to = batch.length < LOG_BATCH ? safe : batch[batch.length - 1].stream;
      const moved = await outbound.advanceCursor(from, to);
      this.lastCursor = moved ? to : -1;
      if (!(await this.renew(lease))) return;
      if (rows.length > 0) void this.sendDue();
    }
  }

  /**
   * Sets the queue depth gauge of destinations that just got rows, so it
   * grows while a destination is down (an operator's alert), not only when
   * a sender looks at it. Bounded: a batch touching many servers updates the
   * first ones; the others are set when served.
   */
  private async updateDepths(destinations: readonly string[]): Promise<void> {
    const outbound = this.outbound as OutboundStore;
    for (const destination of [...new Set(destinations)].slice(0, 50)) this.metrics.depth.set({ destination }, await outbound.depth(destination));
  }

  // ---- 2. EDUs ----

  /** Replaces how an EDU's destinations are found (tests). */
  setEduDestinationsResolver(resolver: EduDestinationsResolver): void {
    this.resolveEduDestinations = resolver;
  }

  /** Queues an OutgoingEdu for its destinations (the bus consumer; also callable in-process). */
  async enqueueEdu(edu: OutgoingEdu | undefined): Promise<void> {
    const outbound = this.outbound;
    if (!outbound || !edu || typeof edu.edu_type !== 'string' || typeof edu.content !== 'object' || edu.content === null) return;
    const destinations = (await this.resolveEduDestinations(edu)).filter((d) => d !== this.options.serverName);
    if (destinations.length === 0) return;
    const ttl = EDU_TTL_MS[edu.edu_type];
    let content = edu.content;
    // Producers send a device list update without stream IDs; they are this server's federation stream (see nextDeviceListIds).
    if (edu.edu_type === 'm.device_list_update' && typeof content['user_id'] === 'string' && content['stream_id'] === undefined) {
      const { streamId, prevIds } = await outbound.nextDeviceListIds(content['user_id']);
      content = { ...content, stream_id: streamId, prev_id: prevIds };
    }
    await outbound.enqueueEdu(destinations, edu.edu_type, content, ttl ? this.now() + ttl : 0);
    await this.updateDepths(destinations);
    void this.sendDue();
  }

  /**
   * OutgoingEdu's destinations: explicit names; else every server with a
   * joined member in `room_id`; else every server sharing a joined room with
   * `user_id`.
   */
  private async defaultEduDestinations(edu: OutgoingEdu): Promise<string[]> {
    const rooms = this.rooms as RoomStore;
    const servers = new Set<string>();
    if (Array.isArray(edu.destinations)) for (const d of edu.destinations) if (typeof d === 'string' && d !== '') servers.add(d);
    const roomIds: string[] = [];
    if (typeof edu.room_id === 'string') roomIds.push(edu.room_id);
    if (typeof edu.user_id === 'string') for (const m of await rooms.roomsOfUser(edu.user_id, ['join'])) roomIds.push(m.room_id);
    for (const roomId of new Set(roomIds)) {
      for (const user of await rooms.joinedUsers(roomId)) {
        const server = domainOfId(user);
        if (server) servers.add(server);
      }
    }
    servers.delete(this.options.serverName);
    return [...servers].sort();
  }

  // ---- 3. sending ----

  /** Starts a sender for each due destination not served yet (bounded). */
  sendDue(): Promise<void> {
    if (this.sendRunning) {
      this.sendAgain = true;
      return this.sendRun;
    }
    this.sendRunning = true;
    this.sendRun = this.runSend();
    return this.sendRun;
  }

  private async runSend(): Promise<void> {
    try {
      const outbound = this.outbound;
      if (!outbound || !this.options.client) return;
      for (let round = 0; round < 10 && !this.stopped; round++) {
        this.sendAgain = false;
        const room = MAX_DESTINATIONS_IN_FLIGHT - this.active.size;
        if (room > 0) {
          for (const destination of await outbound.due(this.now(), room + this.active.size)) {
            if (this.active.size >= MAX_DESTINATIONS_IN_FLIGHT) break;
            if (this.active.has(destination._id)) continue;
            const task = this.serveDestination(destination)
              .catch((err: unknown) => {
                this.options.telemetry.logger.warn({ destination: destination._id, err: (err as Error).message }, 'federation-outbound: destination loop failed');
                return false;
              })
              .then((more) => {
                this.active.delete(destination._id);
                // Stopped at its turn's limit with work left: another turn now. Otherwise (claimed
                // elsewhere, backing off, empty) the poll looks again, so no busy loop forms.
                if (more && !this.stopped) void this.sendDue();
              });
            this.active.set(destination._id, task);
          }
        }
        if (!this.sendAgain) break;
      }
    } catch (err) {
      this.options.telemetry.logger.warn({ err: (err as Error).message }, 'federation-outbound: finding due destinations failed');
    } finally {
      this.sendRunning = false;
    }
  }

  /**
   * Sends transactions to one destination while it has work, holding its
   * claim. True when it stopped at MAX_TXNS_PER_CLAIM with work left.
   */
  private async serveDestination(record: DestinationRecord): Promise<boolean> {
    const outbound = this.outbound as OutboundStore;
    const destination = record._id;
    const lease = `fedout:dest:${destination}`;
    if (!(await this.claim(lease))) return false;
    try {
      // Once collapsed, everything queued until the next success is collapsed too (DestinationRecord.catching_up).
      if (record.retries > 0 && (record.catching_up === true || (await outbound.pdus.count({ destination })) > (this.options.catchUpThreshold ?? CATCH_UP_THRESHOLD))) {
        const dropped = await outbound.collapseToLatestPerRoom(destination);
        this.options.telemetry.logger.info({ destination, dropped }, 'federation-outbound: catching up with the newest event of each room');
      }
      for (let i = 0; i < MAX_TXNS_PER_CLAIM && !this.stopped; i++) {
        const state = await outbound.destinations.get(destination);
        if (!state || state.next_attempt_ts > this.now()) return false;
        const { pdus, edus } = await outbound.head(state, MAX_PDUS_PER_TXN, MAX_EDUS_PER_TXN);
        if (pdus.length === 0 && edus.length === 0) {
          // An outstanding transaction whose rows are all gone (collapsed, expired): done with; look again.
          if ((state.txn_pdus?.length ?? 0) > 0 || (state.txn_edus?.length ?? 0) > 0) {
            await outbound.finish(destination, [], []);
            continue;
          }
          await outbound.clearPending(destination, state.mark);
          this.metrics.depth.set({ destination }, 0);
          return false;
        }
        const ok = await this.sendTransaction(destination, pdus, edus);
        this.metrics.depth.set({ destination }, await outbound.depth(destination));
        if (!ok) return false;
        if (!(await this.renew(lease))) return false;
      }
      return !this.stopped;
    } finally {
      await this.release(lease);
    }
  }

  /** One PUT /send; true when the rows are done with (sent, or refused for good). */
  private async sendTransaction(destination: string, pdus: OutPduRecord[], edus: OutEduRecord[]): Promise<boolean> {
    const outbound = this.outbound as OutboundStore;
    const client = this.options.client as FederationClient;
    const now = this.now();
    const { pdus: pduJson, links } = await this.loadPdus(pdus);
    const eduJson = edus.filter((e) => e.expires_ts === 0 || e.expires_ts > now).map((e) => ({ edu_type: e.edu_type, content: JSON.parse(e.content) as JsonObject }));
    if (pduJson.length === 0 && eduJson.length === 0) {
      await outbound.finish(destination, pdus, edus);
      return true;
    }
    // The ID of the outstanding transaction's rows as first sent (a row dropped since does not change it).
    const state = await outbound.destinations.get(destination);
    const txnId = transactionId([...(state?.txn_pdus ?? pdus.map((r) => r._id)), ...(state?.txn_edus ?? edus.map((r) => r._id))]);
    const eventIds = pdus.map((r) => r.event_id);
    const body: JsonObject = { origin: this.options.serverName, origin_server_ts: now, pdus: pduJson };
    if (eduJson.length > 0) body['edus'] = eduJson;
    return this.options.telemetry.withSpan(
      'federation.transaction.send',
      // docs/federation-design.md "Tracing": linked to the span of the write that produced each event.
      { links, attributes: { 'matrix.destination': destination, 'matrix.txn_id': txnId, 'matrix.event_ids': eventIds, 'matrix.pdu_count': pduJson.length, 'matrix.edu_count': eduJson.length } },
      async (span) => {
        try {
          const answer = await client.request<JsonObject>({
            destination,
            method: 'PUT',
            path: `/_matrix/federation/v1/send/${encodeURIComponent(txnId)}`,
            body,
            timeoutMs: this.options.requestTimeoutMs,
          });
          this.logPduErrors(destination, answer);
          await outbound.finish(destination, pdus, edus);
          await outbound.succeeded(destination, this.now());
          this.metrics.lastSuccess.set({ destination }, Math.floor(this.now() / 1000));
          this.metrics.transactions.inc({ outcome: 'sent' });
          return true;
        } catch (err) {
          // 400 and 413: the destination refuses this transaction as such; sending it again cannot help.
          if (err instanceof FederationHttpError && (err.status === 400 || err.status === 413)) {
            this.options.telemetry.logger.warn({ destination, txnId, status: err.status, errcode: err.errcode }, 'federation-outbound: transaction refused, dropped');
            await outbound.finish(destination, pdus, edus);
            this.metrics.transactions.inc({ outcome: 'dropped' });
            span.setAttribute('matrix.dropped', true);
            return true;
          }
          const backoff = await outbound.failed(destination, this.now(), this.minBackoffMs, this.maxBackoffMs);
          this.metrics.retries.inc({ destination });
          this.metrics.transactions.inc({ outcome: 'failed' });
          span.setAttribute('matrix.retry_in_ms', backoff);
          this.options.telemetry.logger.info({ destination, txnId, backoffMs: backoff, err: (err as Error).message }, 'federation-outbound: transaction failed, backing off');
          return false;
        }
      },
    );
  }

  /**
   * The PDUs of the rows in the wire format of their room version (rows
   * whose event is gone are skipped), and links to the spans that wrote them.
   */
  private async loadPdus(rows: readonly OutPduRecord[]): Promise<{ pdus: JsonObject[]; links: Link[] }> {
    const rooms = this.rooms as RoomStore;
    const records = new Map((await rooms.getEvents(rows.map((r) => r.event_id))).map((r) => [r._id, r]));
    const pdus: JsonObject[] = [];
    const links: Link[] = [];
    for (const row of rows) {
      const record = records.get(row.event_id);
      if (!record) continue;
      const version = await this.versionOf(record);
      if (!version) continue;
      pdus.push(toWirePdu(eventOf(record), version) as unknown as JsonObject);
      const link = linkOf(record);
      if (link) links.push(link);
    }
    return { pdus, links };
  }

  private async versionOf(record: EventRecord): Promise<RoomVersion | undefined> {
    let version = this.versions.get(record.room_id);
    if (!version) {
      const id = (await (this.rooms as RoomStore).getRoom(record.room_id))?.version;
      version = id === undefined ? undefined : getRoomVersion(id);
      if (version) this.versions.set(record.room_id, version);
    }
    return version;
  }

  /** "The receiving server … errors for individual PDUs": logged, not retried (the PDU was received). */
  private logPduErrors(destination: string, answer: JsonObject | undefined): void {
    const results = answer?.['pdus'];
    if (!results || typeof results !== 'object' || Array.isArray(results)) return;
    for (const [eventId, result] of Object.entries(results)) {
      if (result && typeof result === 'object' && !Array.isArray(result) && typeof (result as JsonObject)['error'] === 'string') {
        this.options.telemetry.logger.info({ destination, eventId, error: (result as JsonObject)['error'] }, 'federation-outbound: destination refused a PDU');
      }
    }
  }

  /** The destination was seen alive (it sent us something): retry it now rather than at the end of its backoff. */
  async destinationSeen(destination: string): Promise<void> {
    if (this.outbound && (await this.outbound.wakeDestination(destination))) void this.sendDue();
  }
}

/**
 * Outliers, rejected and soft-failed events never reach the log (they have
 * no stream position, libs/rooms NO_STREAM); checked again here so a change
 * there cannot make this server relay them ("Rejection": "not be relayed").
 */
function isOutlierOrRejected(record: EventRecord): boolean {
  return record.outlier === true || (record.rejected ?? null) !== null || record.soft_failed === true;
}

/** A span link from an event record's `trace` (`<32 hex>-<16 hex>`), if it has a valid one. */
function linkOf(record: EventRecord): Link | undefined {
  const match = typeof record.trace === 'string' ? /^([0-9a-f]{32})-([0-9a-f]{16})$/.exec(record.trace) : null;
  if (!match) return undefined;
  return { context: { traceId: match[1], spanId: match[2], traceFlags: TraceFlags.SAMPLED, isRemote: true }, attributes: { 'matrix.event_id': record._id } };
}

/** A transaction ID from the rows it carries (see the class comment). */
export function transactionId(rowIds: readonly string[]): string {
  return createHash('sha256').update(rowIds.join('\u0000')).digest('base64url').slice(0, 32);
}
