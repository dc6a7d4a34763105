import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus, Subscription } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { consumeDeviceDeletions, E2eeService } from '@atrium/e2ee';
import { ACCOUNT_STORE, BUS, CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';

/**
 * Deletes the E2EE keys of devices deleted through client-api and marks
 * their users' device lists changed (@atrium/e2ee device-events.ts). Every
 * key-server replica shares one durable consumer, so each deletion is handled once
 * (at least once: the handler is idempotent).
 */
@Injectable()
export class DeviceDeletionConsumer implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger(DeviceDeletionConsumer.name);
  private subscription: Subscription | undefined;

  constructor(
    @Inject(DOCUMENT_STORE) private readonly documents: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    const service = await E2eeService.shared(this.documents, this.bus, this.accounts, this.config.server_name);
    this.subscription = await consumeDeviceDeletions(this.bus, async (event) => {
      await service.deviceDeleted(event.user_id, event.device_id);
    });
    this.logger.log('consuming device deletions');
  }

  async onModuleDestroy(): Promise<void> {
    await this.subscription?.unsubscribe();
  }
}
