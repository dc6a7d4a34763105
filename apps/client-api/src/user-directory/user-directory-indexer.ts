import { Inject, Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Bus, Subscription } from '@atrium/bus';
import { BUS } from '@atrium/platform';
import { EVENTS_STREAM, eventOf, type EventRecord, type RoomStore } from '@atrium/rooms';
import { SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/user-data';
import { UserDirectoryStore } from './user-directory-store';
import { USER_DIRECTORY_ROOM_STORE } from './user-directory.tokens';

/** Events read from the room output log per batch. */
const BATCH = 200;
/** Batches per run (bounded loop); the next wake-up, poll or search goes on. */
const MAX_BATCHES_PER_RUN = 50;
/** Re-read without a wake-up this often (a lost notification, a stream gap in flight). */
const POLL_MS = 5000;
/** Wake-ups within this window fold into one run (one read per burst of sends, not per send). */
const DEBOUNCE_MS = 100;
/** Failed attempts at one event before it is skipped (a poison event must not stop the directory for everyone). */
const MAX_EVENT_FAILURES = 5;

const DIRECTORY_TYPES = new Set(['m.room.member', 'm.room.join_rules', 'm.room.history_visibility']);

/**
 * Keeps the user directory index up to date from the room output log
 * (docs/rooms.md: `allEventsBetween`, read by cursor up to the events
 * stream's safe position, as the push gateway does): member events give
 * who is joined where under which display name, join rules and history
 * visibility which rooms make their members visible to every searcher
 * (users.yaml). Runs in every client-api replica; the cursor is shared in
 * storage and moved by compare-and-set, and applying an event twice changes
 * nothing (UserDirectoryStore writes only over older positions), so
 * replicas racing over the same batch are harmless (ARCHITECTURE.md rule 3).
 */
@Injectable()
export class UserDirectoryIndexer implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('UserDirectoryIndexer');
  private subscription?: Subscription;
  private timer?: NodeJS.Timeout;
  private debounce?: NodeJS.Timeout;
  private current: Promise<void> | null = null;
  private again = false;
  private stopped = false;
  private readonly failures = new Map<string, number>();

  constructor(
    @Inject(USER_DIRECTORY_ROOM_STORE) private readonly rooms: RoomStore,
    private readonly directory: UserDirectoryStore,
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  async onModuleInit(): Promise<void> {
    this.subscription = await this.bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (message) => {
      if (message.data?.stream !== EVENTS_STREAM || this.debounce) return;
      this.debounce = setTimeout(() => {
        this.debounce = undefined;
        void this.drain();
      }, DEBOUNCE_MS);
      this.debounce.unref();
    });
    this.timer = setInterval(() => void this.drain(), POLL_MS);
    this.timer.unref();
    void this.drain();
  }

  async onModuleDestroy(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    if (this.debounce) clearTimeout(this.debounce);
    await this.subscription?.unsubscribe();
    await this.current;
  }

  /**
   * Applies the log up to the safe position. A call while a run is going
   * asks for one more round and resolves when that run ends, so a search
   * that awaits it sees every event committed before it started.
   */
  drain(): Promise<void> {
    if (this.current) {
      this.again = true;
      return this.current;
    }
    this.current = (async () => {
      try {
        for (let round = 0; round < 10 && !this.stopped; round++) {
          this.again = false;
          await this.runBatches();
          if (!this.again) break;
        }
      } catch (err) {
        this.logger.warn(`user directory indexer: ${(err as Error).message}`);
      } finally {
        this.current = null;
      }
    })();
    return this.current;
  }

  private async runBatches(): Promise<void> {
    for (let i = 0; i < MAX_BATCHES_PER_RUN && !this.stopped; i++) {
      const from = await this.directory.cursor();
      const safe = await this.rooms.safeStreamPosition();
      if (safe <= from) return;
      const batch = await this.rooms.allEventsBetween(from, safe, BATCH);
      for (const record of batch) {
        if (!(await this.applyWithBound(record))) return; // retried on the next run, from the same cursor
      }
      const to = batch.length < BATCH ? safe : batch[batch.length - 1].stream;
      // If another replica moved it first, its position stands (both applied the same events).
      await this.directory.advanceCursor(from, to);
    }
  }

  /** False when the event failed and should be retried; one that failed MAX_EVENT_FAILURES times is skipped (logged). */
  private async applyWithBound(record: EventRecord): Promise<boolean> {
    try {
      await this.apply(record);
      this.failures.delete(record._id);
      return true;
    } catch (err) {
      const failures = (this.failures.get(record._id) ?? 0) + 1;
      if (failures >= MAX_EVENT_FAILURES) {
        this.failures.delete(record._id);
        this.logger.error(`user directory: skipping ${record._id} after ${failures} failures: ${(err as Error).message}`);
        return true;
      }
      this.failures.set(record._id, failures);
      this.logger.warn(`user directory: ${record._id} failed (${failures}): ${(err as Error).message}`);
      return false;
    }
  }

  private async apply(record: EventRecord): Promise<void> {
    if (!DIRECTORY_TYPES.has(record.type) || record.state_key === null) return;
    const content = eventOf(record).content ?? {};
    if (record.type === 'm.room.member') {
      const displayName = content['displayname'];
      const avatarUrl = content['avatar_url'];
      await this.directory.applyMember({
        roomId: record.room_id,
        userId: record.state_key,
        joined: record.membership === 'join',
        displayName: typeof displayName === 'string' && displayName !== '' ? displayName : null,
        avatarUrl: typeof avatarUrl === 'string' && avatarUrl !== '' ? avatarUrl : null,
        stream: record.stream,
      });
    } else if (record.state_key === '' && record.type === 'm.room.join_rules') {
      await this.directory.applyRoom(record.room_id, 'join_rule', content['join_rule'] === 'public', record.stream);
    } else if (record.state_key === '' && record.type === 'm.room.history_visibility') {
      await this.directory.applyRoom(record.room_id, 'history_visibility', content['history_visibility'] === 'world_readable', record.stream);
    }
  }
}
