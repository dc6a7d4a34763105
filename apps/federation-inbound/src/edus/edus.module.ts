import { Module } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { E2eeService } from '@atrium/e2ee';
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
      useFactory: async (store: DocumentStore, bus: Bus, accounts: AccountStore, config: AtriumConfig) => {
        const edus = await IncomingEdus.open(store, bus, accounts, config.server_name);
        // Device lists and signing keys belong to the E2EE keys (docs/federation-design.md "Remote device lists and E2EE keys"):
        // the remote device list cache is updated and local users sharing a room see the user in device_lists.changed.
        const e2ee = await E2eeService.shared(store, bus, accounts, config.server_name);
        edus.setRoute('m.device_list_update', async (edu) => void (await e2ee.remoteDeviceListUpdate(edu.origin, edu.content)));
        edus.setRoute('m.signing_key_update', async (edu) => void (await e2ee.remoteSigningKeyUpdate(edu.origin, edu.content)));
        return edus;
      },
      inject: [DOCUMENT_STORE, BUS, ACCOUNT_STORE, CONFIG],
    },
  ],
  exports: [INCOMING_EDU_HANDLER],
})
export class FederationEdusModule {}
