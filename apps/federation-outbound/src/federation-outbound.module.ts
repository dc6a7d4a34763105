import { Inject, Injectable, Module, OnModuleDestroy, OnModuleInit, Optional } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import type { Cache } from '@atrium/cache';
import type { AtriumConfig } from '@atrium/config';
import { FEDERATION_CLIENT, FederationClientModule, type FederationClient } from '@atrium/federation-client';
import { BUS, CACHE, CONFIG, DOCUMENT_STORE, TELEMETRY } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import type { Telemetry } from '@atrium/telemetry';
import { FederationSender } from './federation-sender';

/** Runs the FederationSender for the life of the module (see federation-sender.ts). */
@Injectable()
export class FederationOutboundService implements OnModuleInit, OnModuleDestroy {
  readonly sender: FederationSender;

  constructor(
    @Inject(DOCUMENT_STORE) store: DocumentStore,
    @Inject(BUS) bus: Bus,
    @Inject(CACHE) cache: Cache,
    @Inject(CONFIG) config: AtriumConfig,
    @Inject(TELEMETRY) telemetry: Telemetry,
    @Optional() @Inject(FEDERATION_CLIENT) client: FederationClient | null,
  ) {
    if (!client) telemetry.logger.warn('federation-outbound: no FederationClient provided; transactions are queued but not sent');
    this.sender = new FederationSender({ store, bus, cache, telemetry, serverName: config.server_name, client: client ?? null });
  }

  async onModuleInit(): Promise<void> {
    await this.sender.start();
  }

  async onModuleDestroy(): Promise<void> {
    await this.sender.stop();
  }
}

/**
 * Per-destination transaction queues (docs/federation-design.md "Outbound"):
 * PDUs from the room output log and EDUs from OUTGOING_EDU_STREAM, sent by
 * PUT /_matrix/federation/v1/send/{txnId}. The transport (FEDERATION_CLIENT)
 * comes from FederationClientModule (not global, so imported here; Nest
 * shares its one instance with the other modules importing it).
 */
@Module({ imports: [FederationClientModule], providers: [FederationOutboundService], exports: [FederationOutboundService] })
export class FederationOutboundModule {}
