import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Bus, Subscription } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import type { PushEvaluation, PushRuleset, RoomEvent } from '@atrium/matrix';
import { BUS, CONFIG, DOCUMENT_STORE, TELEMETRY } from '@atrium/platform';
import { MAIN_THREAD } from '@atrium/ephemeral';
import { PushStores, type RoomPushContext } from '@atrium/push';
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
/** Recipients of one event evaluated and written at once. */
const RECIPIENT_CONCURRENCY = 16;
/** Pushes in flight at once; beyond this, the consumer waits for one to finish. */
const MAX_IN_FLIGHT = 64;
/** The receipts stream's name (libs/ephemeral EPHEMERAL_STREAMS.receipts). */
const RECEIPTS_STREAM = 'receipts';
/** Users remembered with the badge last sent to their pushers. */
const MAX_BADGES_REMEMBERED = 50_000;

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
  private subscription?: Subscription;
  private timer?: NodeJS.Timeout;
  private running = false;
  private again = false;
  private stopped = false;
  private readonly failures = new Map<string, number>();
  private readonly inFlight = new Set<Promise<void>>();
  /** The last `counts.unread` sent to each user's pushers (in memory: a restart sends one badge update more, which is harmless). */
  private readonly badges = new Map<string, number>();
  private badgeQueue: Promise<void> = Promise.resolve();
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
    this.subscription = await this.bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (message) => {
      if (message.data?.stream === EVENTS_STREAM) void this.drain();
      else if (message.data?.stream === RECEIPTS_STREAM) this.queueBadges(message.data);
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
      const batch = await stores.rooms.allEventsBetween(from, safe, BATCH);
      const rooms = new Map<string, RoomPushContext>();
      const rules = new Map<string, PushRuleset>();
      for (const record of batch) {
        if (!(await this.processWithBound(record, rooms, rules))) return; // retried on the next run
      }
      const to = batch.length < BATCH ? safe : batch[batch.length - 1].stream;
      // Compare-and-set: if another replica moved it, its position stands (both processed the same events idempotently).
      await stores.notifications.advanceCursor(from, to);
    }
  }

  /** False when the event failed and should be retried; a repeatedly failing event is skipped. */
  private async processWithBound(record: EventRecord, rooms: Map<string, RoomPushContext>, rules: Map<string, PushRuleset>): Promise<boolean> {
    try {
      await this.processEvent(record, rooms, rules);
      this.metrics.events.inc();
      this.failures.delete(record._id);
      return true;
    } catch (err) {
      const failures = (this.failures.get(record._id) ?? 0) + 1;
      this.failures.set(record._id, failures);
      this.logger.warn(`push evaluation of ${record._id} failed (${failures}/${MAX_EVENT_FAILURES}): ${(err as Error).message}`);
      if (failures < MAX_EVENT_FAILURES) return false;
      this.failures.delete(record._id);
      return true;
    }
  }

  private async processEvent(record: EventRecord, rooms: Map<string, RoomPushContext>, rules: Map<string, PushRuleset>): Promise<void> {
    const stores = this.stores as PushStores;
    const event = eventOf(record);
    // State changes (members, power levels) change the context of what follows.
    let room = rooms.get(record.room_id);
    if (!room || record.state_key !== null) {
      room = await stores.evaluator.roomContext(record.room_id);
      rooms.set(record.room_id, room);
    }
    let threadOfEvent: string | undefined;
    const thread = async (): Promise<string> => (threadOfEvent ??= await stores.evaluator.threadOf(event));
    // "either by using the API or by sending an event": what a local user sends reads their thread up to it.
    if (this.isLocal(event.sender)) await stores.notifications.markSent(event.sender, record.room_id, await thread(), record.stream);

    // Recipients are independent: evaluated and written a few at a time (round trips overlap; FerretDB answers each in milliseconds).
    const recipients = stores.evaluator.recipients(record, event, room, (u) => this.isLocal(u));
    const threadId = recipients.length > 0 ? await thread() : MAIN_THREAD;
    for (let i = 0; i < recipients.length; i += RECIPIENT_CONCURRENCY) {
      await Promise.all(recipients.slice(i, i + RECIPIENT_CONCURRENCY).map((userId) => this.notifyOne(userId, record, event, room, rules, threadId)));
    }
  }

  private async notifyOne(userId: string, record: EventRecord, event: RoomEvent, room: RoomPushContext, rules: Map<string, PushRuleset>, threadId: string): Promise<void> {
    const stores = this.stores as PushStores;
    let ruleset = rules.get(userId);
    if (!ruleset) {
      ruleset = await stores.evaluator.rulesOf(userId);
      rules.set(userId, ruleset);
    }
    const evaluation = await stores.evaluator.evaluate(userId, event, room, ruleset);
    if (!evaluation.notify) return;
    const inserted = await stores.notifications.record({
      userId,
      roomId: record.room_id,
      eventId: record._id,
      threadId,
      eventStream: record.stream,
      highlight: evaluation.highlight,
      actions: evaluation.actions,
    });
    if (inserted) this.metrics.notifications.inc({ highlight: String(evaluation.highlight) });
    if (!inserted && (await stores.notifications.get(userId, record._id))?.pushed) return;
    await this.schedulePush(userId, record, event, evaluation);
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
   * room, so its local members with HTTP pushers are checked. One check at a
   * time (a queue), so a burst of receipts does not flood storage.
   */
  private queueBadges(wake: SyncWake): void {
    this.badgeQueue = this.badgeQueue
      .then(() => this.sendBadges(wake))
      .catch((err: unknown) => this.logger.warn(`badge update failed: ${(err as Error).message}`));
  }

  private async sendBadges(wake: SyncWake): Promise<void> {
    const stores = this.stores;
    if (!stores || this.stopped) return;
    const candidates = Array.isArray(wake.user_ids)
      ? wake.user_ids.filter((u) => typeof u === 'string')
      : typeof wake.room_id === 'string'
        ? await stores.rooms.joinedUsers(wake.room_id)
        : [];
    const users = await stores.pushers.usersWithPushers(candidates.filter((u) => this.isLocal(u)));
    if (users.size === 0) return;
    const upTo = await stores.rooms.safeStreamPosition();
    for (const userId of users) {
      const unread = await stores.counter.unreadAcrossRooms(userId, upTo);
      if (this.badges.get(userId) === unread) continue;
      this.rememberBadge(userId, unread);
      for (const pusher of (await stores.pushers.forUser(userId)).filter((p) => p.kind === 'http')) {
        const url = (JSON.parse(pusher.data) as { url?: unknown }).url;
        if (typeof url !== 'string') continue;
        const outcome = await sendToPusher(url, badgeBody(pusher, unread));
        this.metrics.pushes.inc({ outcome: !outcome.delivered ? 'failed' : outcome.rejected.includes(pusher.pushkey) ? 'rejected' : 'delivered' });
        if (outcome.delivered && outcome.rejected.includes(pusher.pushkey)) await stores.pushers.deleteRejected(userId, pusher.app_id, pusher.pushkey);
      }
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
