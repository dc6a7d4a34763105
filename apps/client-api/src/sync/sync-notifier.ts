import { Inject, Injectable, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import type { Bus, Subscription } from '@atrium/bus';
import { BUS, TELEMETRY } from '@atrium/platform';
import { SYNC_WAKE_SUBJECT, type SyncWake } from '@atrium/rooms';
import type { Metrics, Telemetry } from '@atrium/telemetry';

/** The subject writers notify after a commit, and what it carries (libs/rooms sync-wake.ts). */
export { SYNC_WAKE_SUBJECT, type SyncWake };

/** A registration for wake-ups, made before reading storage so no notification falls between the read and the wait. */
export interface ArmedWait {
  /** Resolves true when woken (now or earlier since arming), false after `timeoutMs` or on abort. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<boolean>;
  /** Changes the rooms this waiter listens for (after re-reading memberships). */
  setRooms(roomIds: ReadonlySet<string>): void;
  /** Unregisters. */
  cancel(): void;
}

interface Waiter {
  userId: string;
  /** null until the first read of the user's rooms: then any room's notification wakes it. */
  roomIds: ReadonlySet<string> | null;
  fired: boolean;
  resolve?: (woken: boolean) => void;
}

/**
 * Wakes long-polling /sync requests. Subscribes to `sync.wake` once per
 * process (module init) and wakes the waiters a notification concerns: those
 * with any membership in the room it names (a member, an invitee, a user who
 * just left) and those among its `user_ids`; one naming neither wakes all.
 * A woken request re-reads storage, so a notification that carries nothing
 * for it costs one re-read, and a lost one (notify is fire-and-forget) costs
 * at most the caller's recheck interval.
 */
@Injectable()
export class SyncNotifier implements OnModuleInit, OnModuleDestroy {
  private subscription?: Subscription;
  private readonly waiters = new Set<Waiter>();
  /** Requests woken by a notification (sync wake-ups). */
  wakeups = 0;
  /** ARCHITECTURE.md "Observability": sync wake-ups, and long-polls waiting. */
  private readonly wakeupCounter: ReturnType<Metrics['counter']>;
  private readonly waitingGauge: ReturnType<Metrics['gauge']>;

  constructor(
    @Inject(BUS) private readonly bus: Bus,
    @Inject(TELEMETRY) telemetry: Telemetry,
  ) {
    this.wakeupCounter = telemetry.metrics.counter('sync_wakeups_total', 'Long-polling /sync requests woken by a sync.wake notification');
    this.waitingGauge = telemetry.metrics.gauge('sync_waiting_requests', 'Long-polling /sync requests registered for wake-ups');
  }

  async onModuleInit(): Promise<void> {
    this.subscription = await this.bus.subscribe<SyncWake>(SYNC_WAKE_SUBJECT, (message) => this.dispatch(message.data));
  }

  async onModuleDestroy(): Promise<void> {
    for (const waiter of this.waiters) this.fire(waiter);
    this.waiters.clear();
    await this.subscription?.unsubscribe();
  }

  private fire(waiter: Waiter): void {
    if (waiter.fired) return;
    waiter.fired = true;
    this.wakeups++;
    this.wakeupCounter.inc();
    waiter.resolve?.(true);
  }

  private dispatch(wake: SyncWake): void {
    if (typeof wake !== 'object' || wake === null) return;
    const roomId = typeof wake.room_id === 'string' ? wake.room_id : undefined;
    const users = Array.isArray(wake.user_ids) ? new Set(wake.user_ids) : undefined;
    for (const waiter of this.waiters) {
      const forRoom = roomId !== undefined && (waiter.roomIds === null || waiter.roomIds.has(roomId));
      const forUser = users?.has(waiter.userId) ?? false;
      if (forRoom || forUser || (roomId === undefined && users === undefined)) this.fire(waiter);
    }
  }

  /**
   * `roomIds` null: the rooms are not known yet (armed before the first read), so
   * a notification for any room wakes the waiter; a spurious wake costs one
   * rebuild, a missed one would cost the whole recheck interval.
   */
  arm(userId: string, roomIds: ReadonlySet<string> | null): ArmedWait {
    const waiter: Waiter = { userId, roomIds, fired: false };
    this.waiters.add(waiter);
    this.waitingGauge.set(this.waiters.size);
    return {
      setRooms: (rooms) => {
        waiter.roomIds = rooms;
      },
      cancel: () => {
        this.waiters.delete(waiter);
        this.waitingGauge.set(this.waiters.size);
        waiter.resolve?.(false);
      },
      wait: (timeoutMs, signal) =>
        new Promise<boolean>((resolve) => {
          if (waiter.fired || signal?.aborted) {
            waiter.fired = false;
            resolve(!signal?.aborted);
            return;
          }
          const finish = (woken: boolean): void => {
            clearTimeout(timer);
            signal?.removeEventListener('abort', onAbort);
            waiter.resolve = undefined;
            waiter.fired = false;
            resolve(woken);
          };
          const onAbort = (): void => finish(false);
          const timer = setTimeout(() => finish(false), Math.max(0, timeoutMs));
          signal?.addEventListener('abort', onAbort, { once: true });
          waiter.resolve = finish;
        }),
    };
  }

  /** Requests currently registered (for tests and metrics). */
  get waiting(): number {
    return this.waiters.size;
  }
}
