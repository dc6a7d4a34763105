import { Injectable, Logger, OnModuleDestroy, OnModuleInit } from '@nestjs/common';
import { UserDataStores } from './user-data.stores';

/**
 * What other modules call on a user's pro-active action other than syncing
 * (sending a message: presence module, "Last active ago"). Never fails the
 * caller: a presence write that fails is logged.
 */
@Injectable()
export class PresenceActivity {
  private readonly logger = new Logger('PresenceActivity');

  constructor(private readonly stores: UserDataStores) {}

  async bump(userId: string): Promise<void> {
    try {
      await this.stores.presence.bumpActivity(userId, () => this.stores.presenceAudience(userId));
    } catch (err) {
      this.logger.warn(`presence activity of ${userId}: ${(err as Error).message}`);
    }
  }
}

/** How often online users are checked for inactivity (announcements are at most this late). */
const SWEEP_MS = 10_000;

/**
 * Runs PresenceStore.announceInactivity periodically, so users sharing a room
 * with someone who stopped being active get the `m.presence` update saying
 * so in /sync (presence module, "Last active ago" and "Idle timeout"),
 * instead of seeing them `currently_active` until they next look them up.
 * Every client-api replica runs it; the store's compare-and-set keeps that to
 * one announcement per change.
 */
@Injectable()
export class PresenceIdleSweep implements OnModuleInit, OnModuleDestroy {
  private readonly logger = new Logger('PresenceIdleSweep');
  private timer?: NodeJS.Timeout;
  private running?: Promise<void>;

  constructor(private readonly stores: UserDataStores) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.sweep(), SWEEP_MS);
    this.timer.unref();
  }

  async onModuleDestroy(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  sweep(): Promise<void> {
    this.running ??= (async () => {
      try {
        await this.stores.presence.announceInactivity((userId) => this.stores.presenceAudience(userId));
      } catch (err) {
        this.logger.warn(`presence idle sweep: ${(err as Error).message}`);
      } finally {
        this.running = undefined;
      }
    })();
    return this.running;
  }
}
