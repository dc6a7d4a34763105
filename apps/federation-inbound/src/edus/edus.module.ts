import { Module } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { INCOMING_EDU_HANDLER } from '@atrium/federation-client';
import { ACCOUNT_STORE, BUS, CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import { IncomingEdus } from './incoming-edus';

/**
 * Provides INCOMING_EDU_HANDLER (libs/federation-client/src/edus.ts): the
 * /send controller hands each received EDU to IncomingEdus, which writes it
 * to its owner's storage (typing, receipts, presence, to-device, device lists).
 */
@Module({
  providers: [
    {
      provide: INCOMING_EDU_HANDLER,
      useFactory: (store: DocumentStore, bus: Bus, accounts: AccountStore, config: AtriumConfig) => IncomingEdus.open(store, bus, accounts, config.server_name),
      inject: [DOCUMENT_STORE, BUS, ACCOUNT_STORE, CONFIG],
    },
  ],
  exports: [INCOMING_EDU_HANDLER],
})
export class FederationEdusModule {}
