import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Bus, Subscription } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import type { PushEvaluation, RoomEvent } from '@atrium/matrix';
import { BUS, CONFIG, DOCUMENT_STORE, TELEMETRY } from '@atrium/platform';
import { EPHEMERAL_STREAMS } from '@atrium/ephemeral';
import { NotificationStore, PushStores, type CachedPushRules, type RoomPushContext } from '@atrium/push';
import { eventOf, EVENTS_STREAM, type EventRecord } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import type { Metrics, Telemetry } from '@atrium/telemetry';
import { SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/user-data';
import { badgeBody, notificationBody, sendToPusher } from './http-pusher';

/** Events read from the room output log per batch. */
const BATCH = 100;
/** Batches per run before yielding to the timer (bounded loop). */
const MAX_BATCHES_PER_RUN = 50;
/** How often the log is re-read without a wake-up (a lost notification, a stream gap in flight). */
const POLL_MS = 1000;
/** Failed attempts at one event before it is skipped (a poison event must not stop push for everyone). */
const MAX_EVENT_FAILURES = 5;
/** Writes of a batch in flight at once. */
const WRITE_CONCURRENCY = 16;
/** Room contexts kept across batches (see `contexts`), and how long one is trusted. */
const MAX_CONTEXTS = 2000;
const CONTEXT_TTL_MS = 10_000;

/** Pushes in flight at once; beyond this, the consumer waits for one to finish. */
const MAX_IN_FLIGHT = 64;
/** How long notification rows are kept, and how often old ones are deleted. */
const KEEP_NOTIFICATIONS_MS = 30 * 24 * 3600_000;
const PRUNE_EVERY_MS = 3600_000;
/** Users remembered with the badge last sent to their pushers. */
const MAX_BADGES_REMEMBERED = 50_000;

/** A notification a batch's evaluation asks for. */
interface PendingNotification {
  userId: string;
  record: EventRecord;
  event: RoomEvent;
  threadId: string;
  evaluation: PushEvaluation;
}

interface EvaluatedBatch {
  notifications: PendingNotification[];
  /** The latest event each local sender sent per room and thread in the batch. */
  sent: Map<string, { userId: string; roomId: string; threadId: string; stream: number }>;
}

/** Runs `fn` over `items`, at most `limit` at once; results in order. */
async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * The push gateway's consumer of the room output (ARCHITECTURE.md "Push";
 * docs/rooms.md: `allEventsBetween`, "the room output log read by cursor for
 * push and federation out"). It keeps its cursor in storage, reads up to the
 * events stream's safe position, wakes on `sync.wake` for the events stream
 * and polls each second as a fallback.
 *
 * For each event and each local member it evaluates the member's push rules
 * (client-server-api "Server behaviour") and records a notification row when
 * they say notify, then posts to the member's HTTP pushers. At-least-once
 * (rule 3): the cursor moves after a batch is processed; a replay inserts no
 * second row (keyed by user and event ID) and pushes again only a row not
 * marked pushed.
 *
 * It does not wake /sync: the counts of an event are part of the same /sync
 * response as the event (spec "Server behaviour"), computed there for events
 * this consumer has not reached (libs/push UnreadCounter), and the event's
 * own `sync.wake` from the room server already wakes the room's members.
 */
@Injectable()
export class PushConsumer implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('PushConsumer');
  private stores?: PushStores;
  /** Members' push rules, kept across batches while no account data changes. */
  private rules?: CachedPushRules;
  private subscription?: Subscription;
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private readonly failures = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  /** The last `counts.unread` sent to each user's pushers (in memory: a restart sends one badge update more, which is harmless). */
  private readonly badges = new Map<string, number>();
  /** Users and rooms whose receipts moved since the last badge check. */
  private readonly badgeUsers = new Set<string>();
  private readonly badgeRooms = new Set<string>();
  private badgesRunning = false;
  private lastPrune = 0;
  /**
   * Room contexts (joined members, power levels) kept across batches: a
   * batch of events spread over many rooms would otherwise read three
   * records per event. A state event in the log replaces its room's entry
   * (evaluateEvent), so an entry is current while this consumer has seen
   * every event since it was read: `contextsAt` is the cursor the cache
   * follows, and any other cursor (another replica moved it, a batch
   * failed) empties it. The TTL bounds what could still change current
   * state without a state event passing here (a state resolution on a
   * fork's merge).
   */
  private readonly contexts = new Map<string, { context: RoomPushContext; at: number }>();
  private contextsAt: number | null = null;
  private readonly metrics: {
    events: ReturnType<Metrics['counter']>;
    notifications: ReturnType<Metrics['counter']>;
    pushes: ReturnType<Metrics['counter']>;
    lag: ReturnType<Metrics['gauge']>;
  };

  constructor(
    @Inject(DOCUMENT_STORE) private readonly store: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(TELEMETRY) telemetry: Telemetry,
  ) {
    const m = telemetry.metrics;
    this.metrics = {
      events: m.counter('push_events_total', 'Room events the push gateway evaluated'),
      notifications: m.counter('push_notifications_total', 'Notifications recorded (a rule said notify), by highlight', ['highlight']),
      pushes: m.counter('push_http_total', 'Requests to HTTP pushers by outcome (delivered, rejected, failed)', ['outcome']),
      lag: m.gauge('push_lag_events', 'Positions of the events stream the push gateway is behind its safe position'),
    };
  }

  async onModuleInit(): Promise<void> {
    this.stores = await PushStores.shared(this.store, this.bus);
    this.rules = this.stores.cachedRules();
    this.subscription = await this.bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (message) => {
      if (message.data?.stream === EVENTS_STREAM) void this.drain();
      else if (message.data?.stream === EPHEMERAL_STREAMS.receipts) this.queueBadges(message.data);
    });
    this.timer = setInterval(() => void this.drain(), POLL_MS);
    this.timer.unref();
    void this.drain();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await this.subscription?.unsubscribe();
    await Promise.race([Promise.allSettled([...this.inFlight]), new Promise((resolve) => setTimeout(resolve, 2000))]);
  }

  private isLocal(userId: string): boolean {
    return userId.endsWith(`:${this.config.server_name}`);
  }

  /** Processes the log up to the safe position; concurrent calls fold into one more round. */
  async drain(): Promise<void> {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      for (let round = 0; round < 10 && !this.stopped; round++) {
        this.again = false;
        await this.runBatches();
        if (!this.again) break;
      }
    } catch (err) {
      this.logger.warn(`push consumer: ${(err as Error).message}`);
    } finally {
      this.running = false;
    }
  }

  private async runBatches(): Promise<void> {
    const stores = this.stores;
    if (!stores) return;
    for (let i = 0; i < MAX_BATCHES_PER_RUN && !this.stopped; i++) {
      const from = await stores.notifications.cursor();
      const safe = await stores.rooms.safeStreamPosition();
      this.metrics.lag.set(Math.max(0, safe - from));
      if (safe <= from) return;
      if (this.contextsAt !== from) this.contexts.clear();
      this.contextsAt = null;
      const batch = await stores.rooms.allEventsBetween(from, safe, BATCH);
      const evaluated = await this.evaluateBatch(batch);
      if (!evaluated) return; // an event failed: the batch is retried on the next run
      await this.writeBatch(evaluated);
      const to = batch.length < BATCH ? safe : batch[batch.length - 1].stream;
      // Compare-and-set: if another replica moved it, its position stands (both processed the same events idempotently).
      if (await stores.notifications.advanceCursor(from, to)) this.contextsAt = to;
    }
    if (Date.now() - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = Date.now();
      const pruned = await stores.notifications.pruneBefore(Date.now() - KEEP_NOTIFICATIONS_MS);
      if (pruned > 0) this.logger.log(`deleted ${pruned} notifications older than 30 days`);
    }
  }

  /**
   * Evaluates every event of a batch in order (room contexts change with
   * state events), without writing. Null when an event failed and should be
   * retried; one that failed MAX_EVENT_FAILURES times is skipped.
   */
  private async evaluateBatch(batch: readonly EventRecord[]): Promise<EvaluatedBatch | null> {
    const out: EvaluatedBatch = { notifications: [], sent: new Map() };
    const rules = this.rules as CachedPushRules;
    await rules.refresh();
    for (const record of batch) {
      try {
        await this.evaluateEvent(record, rules, out);
        this.metrics.events.inc();
        this.failures.delete(record._id);
      } catch (err) {
        const failures = (this.failures.get(record._id) ?? 0) + 1;
        this.failures.set(record._id, failures);
        this.logger.warn(`push evaluation of ${record._id} failed (${failures}/${MAX_EVENT_FAILURES}): ${(err as Error).message}`);
        if (failures < MAX_EVENT_FAILURES) return null;
        this.failures.delete(record._id);
      }
    }
    return out;
  }

  /** The room's context from `contexts`, read again when missing, old, or after a state event (`refresh`). */
  private async roomContext(roomId: string, refresh: boolean): Promise<RoomPushContext> {
    const cached = this.contexts.get(roomId);
    if (cached && !refresh && Date.now() - cached.at < CONTEXT_TTL_MS) return cached.context;
    const context = await (this.stores as PushStores).evaluator.roomContext(roomId);
    this.contexts.delete(roomId);
    if (this.contexts.size >= MAX_CONTEXTS) this.contexts.delete(this.contexts.keys().next().value as string);
    this.contexts.set(roomId, { context, at: Date.now() });
    return context;
  }

  private async evaluateEvent(record: EventRecord, rules: CachedPushRules, out: EvaluatedBatch): Promise<void> {
    const stores = this.stores as PushStores;
    const event = eventOf(record);
    // State changes (members, power levels) change the context of what follows.
    const room = await this.roomContext(record.room_id, record.state_key !== null);
    const recipients = stores.evaluator.recipients(record, event, room, (u) => this.isLocal(u));
    const local = this.isLocal(event.sender);
    if (recipients.length === 0 && !local) return;
    const threadId = await stores.evaluator.threadOf(event);
    // "either by using the API or by sending an event": what a local user sends reads their thread up to it.
    if (local) out.sent.set(`${event.sender}\n${record.room_id}\n${threadId}`, { userId: event.sender, roomId: record.room_id, threadId, stream: record.stream });
    const rulesets = await Promise.all(recipients.map((u) => rules.get(u)));
    for (const [i, userId] of recipients.entries()) {
      const evaluation = await stores.evaluator.evaluate(userId, event, room, rulesets[i]);
      if (evaluation.notify) out.notifications.push({ userId, record, event, threadId, evaluation });
    }
  }

  /**
   * Writes a batch's results with few round trips (FerretDB answers each in
   * milliseconds, and an event in a 50-member room has ~49 rows): the
   * latest-row marks (one per user and room, before any row, so a mark is
   * never below a stored row) in one updateMany per position, the sent marks,
   * the rows in one insertMany; then pushes for the users who have HTTP
   * pushers (one query for the batch). A failed write throws: the batch is redone.
   */
  private async writeBatch(batch: EvaluatedBatch): Promise<void> {
    const stores = this.stores as PushStores;
    const latest = new Map<string, { userId: string; roomId: string; eventStream: number }>();
    for (const n of batch.notifications) {
      const key = `${n.userId}\n${n.record.room_id}`;
      latest.set(key, { userId: n.userId, roomId: n.record.room_id, eventStream: Math.max(latest.get(key)?.eventStream ?? 0, n.record.stream) });
    }
    await stores.notifications.moveLatestMany([...latest.values()]);
    await inParallel([...batch.sent.values()], WRITE_CONCURRENCY, (m) => stores.notifications.markSent(m.userId, m.roomId, m.threadId, m.stream));
    const inserted = await stores.notifications.insertRows(
      batch.notifications.map((n) => ({
        userId: n.userId,
        roomId: n.record.room_id,
        eventId: n.record._id,
        threadId: n.threadId,
        eventStream: n.record.stream,
        highlight: n.evaluation.highlight,
        actions: n.evaluation.actions,
      })),
    );
    const isNew = (n: PendingNotification): boolean => inserted.has(NotificationStore.rowId(n.userId, n.record._id));
    for (const n of batch.notifications) if (isNew(n)) this.metrics.notifications.inc({ highlight: String(n.evaluation.highlight) });
    const withPushers = await stores.pushers.usersWithPushers([...new Set(batch.notifications.map((n) => n.userId))]);
    const toPush = batch.notifications.filter((n) => withPushers.has(n.userId));
    // A replayed row already pushed is not pushed again (one read for the batch's replayed rows).
    const replayed = toPush.filter((n) => !isNew(n));
    const pushed = new Set(
      (await stores.notifications.getMany(replayed.map((n) => ({ userId: n.userId, eventId: n.record._id })))).filter((r) => r.pushed).map((r) => r._id),
    );
    for (const n of toPush) {
      if (pushed.has(NotificationStore.rowId(n.userId, n.record._id))) continue;
      await this.schedulePush(n.userId, n.record, n.event, n.evaluation);
    }
  }

  private async schedulePush(userId: string, record: EventRecord, event: RoomEvent, evaluation: PushEvaluation): Promise<void> {
    while (this.inFlight.size >= MAX_IN_FLIGHT) await Promise.race([...this.inFlight]);
    const task = this.push(userId, record, event, evaluation)
      .catch((err: unknown) => this.logger.warn(`push of ${record._id} to ${userId} failed: ${(err as Error).message}`))
      .finally(() => this.inFlight.delete(task));
    this.inFlight.add(task);
  }

  /** Posts to every HTTP pusher of the user, then marks the row pushed. Email pushers are not served (no mail sender). */
  private async push(userId: string, record: EventRecord, event: RoomEvent, evaluation: PushEvaluation): Promise<void> {
    const stores = this.stores as PushStores;
    const pushers = (await stores.pushers.forUser(userId)).filter((p) => p.kind === 'http');
    if (pushers.length > 0) {
      const [senderDisplayName, roomName, roomAlias, unread] = await Promise.all([
        stores.evaluator.displayName(record.room_id, event.sender),
        this.stateString(record.room_id, 'm.room.name', 'name'),
        this.stateString(record.room_id, 'm.room.canonical_alias', 'alias'),
        stores.counter.unreadAcrossRooms(userId, record.stream),
      ]);
      this.rememberBadge(userId, unread);
      for (const pusher of pushers) {
        const url = (JSON.parse(pusher.data) as { url?: unknown }).url;
        if (typeof url !== 'string') continue;
        const body = notificationBody(pusher, { event, evaluation, userId, senderDisplayName, roomName, roomAlias, unread });
        const outcome = await sendToPusher(url, body);
        this.metrics.pushes.inc({ outcome: !outcome.delivered ? 'failed' : outcome.rejected.includes(pusher.pushkey) ? 'rejected' : 'delivered' });
        if (!outcome.delivered) {
          this.logger.warn(`push to ${pusher.app_id} for ${userId} dropped: ${outcome.reason}`);
          continue;
        }
        // "Homeservers must cease sending notification requests for these pushkeys and remove the associated pushers."
        if (outcome.rejected.includes(pusher.pushkey)) await stores.pushers.deleteRejected(userId, pusher.app_id, pusher.pushkey);
      }
    }
    await stores.notifications.markPushed(userId, record._id);
  }

  /**
   * After a receipt ("Marking notifications as read"), the users' unread
   * count may have dropped: their pushers get a counts-only request when it
   * differs from the last one sent. A public receipt's wake names only the
   * room, so its local members with HTTP pushers are checked. One check runs
   * at a time; the users and rooms named meanwhile are folded into its next
   * round, so a burst of receipts costs one check per user, not one per receipt.
   */
  private queueBadges(wake?: SyncWake): void {
    if (wake && Array.isArray(wake.user_ids)) for (const u of wake.user_ids) if (typeof u === 'string') this.badgeUsers.add(u);
    if (wake && typeof wake.room_id === 'string') this.badgeRooms.add(wake.room_id);
    if (this.badgesRunning || this.stopped) return;
    this.badgesRunning = true;
    void this.sendBadges()
      .catch((err: unknown) => this.logger.warn(`badge update failed: ${(err as Error).message}`))
      .finally(() => {
        this.badgesRunning = false;
        // Named after the last round looked: one more run.
        if (this.badgeUsers.size > 0 || this.badgeRooms.size > 0) this.queueBadges();
      });
  }

  /** Works through the users and rooms receipts named (each once however many receipts came in meanwhile). */
  private async sendBadges(): Promise<void> {
    const stores = this.stores;
    for (let round = 0; round < 1000 && stores && !this.stopped && (this.badgeUsers.size > 0 || this.badgeRooms.size > 0); round++) {
      const candidates = new Set(this.badgeUsers);
      this.badgeUsers.clear();
      const rooms = [...this.badgeRooms];
      this.badgeRooms.clear();
      for (const roomId of rooms) for (const u of await stores.rooms.joinedUsers(roomId)) candidates.add(u);
      const users = await stores.pushers.usersWithPushers([...candidates].filter((u) => this.isLocal(u)));
      if (users.size === 0) continue;
      const upTo = await stores.rooms.safeStreamPosition();
      for (const userId of users) await this.sendBadge(userId, upTo);
    }
  }

  private async sendBadge(userId: string, upTo: number): Promise<void> {
    const stores = this.stores as PushStores;
    const unread = await stores.counter.unreadAcrossRooms(userId, upTo);
    if (this.badges.get(userId) === unread) return;
    this.rememberBadge(userId, unread);
    for (const pusher of (await stores.pushers.forUser(userId)).filter((p) => p.kind === 'http')) {
      const url = (JSON.parse(pusher.data) as { url?: unknown }).url;
      if (typeof url !== 'string') continue;
      const outcome = await sendToPusher(url, badgeBody(pusher, unread));
      this.metrics.pushes.inc({ outcome: !outcome.delivered ? 'failed' : outcome.rejected.includes(pusher.pushkey) ? 'rejected' : 'delivered' });
      if (outcome.delivered && outcome.rejected.includes(pusher.pushkey)) await stores.pushers.deleteRejected(userId, pusher.app_id, pusher.pushkey);
    }
  }

  private rememberBadge(userId: string, unread: number): void {
    this.badges.delete(userId);
    this.badges.set(userId, unread);
    if (this.badges.size > MAX_BADGES_REMEMBERED) {
      const oldest = this.badges.keys().next().value;
      if (oldest !== undefined) this.badges.delete(oldest);
    }
  }

  private async stateString(roomId: string, type: string, key: string): Promise<string | null> {
    const record = await (this.stores as PushStores).rooms.currentStateEvent(roomId, type, '');
    const value = record ? eventOf(record).content[key] : undefined;
    return typeof value === 'string' && value !== '' ? value : null;
  }
}
