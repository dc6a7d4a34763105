import { Controller, Get, Inject, Module } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import type { AtriumConfig } from '@atrium/config';
import { FederationClientModule } from '@atrium/federation-client';
import { Errors } from '@atrium/http';
import { OpenIdTokenStore } from '@atrium/accounts';
import { CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import { ATRIUM_VERSION } from './version';
import { FEDERATION_OPENID_TOKEN_STORE, OpenIdUserInfoController } from './openid.controller';
import { XMatrixGuard } from './auth/x-matrix.guard';
import { FederationEdusModule } from './edus/edus.module';
import { FederationMembershipController } from './membership.controller';
import { FederationQueryModule } from './query/query.module';
import { ROOM_STORE, RoomStore } from '@atrium/rooms';
import { FederationRoomEventsController } from './rooms/room-events.controller';
import { FederationTransactionsController, INBOUND_TRANSACTION_STORE } from './transactions/transactions.controller';
import { InboundTransactionStore } from './transactions/transaction-store';

/** Spec: data/api/server-server/version.yaml and wellknown.yaml (server-server-api "Server discovery"). */
@Controller()
export class FederationDiscoveryController {
  constructor(@Inject(CONFIG) private readonly config: AtriumConfig) {}

  @Get('_matrix/federation/v1/version')
  version(): { server: { name: string; version: string } } {
    return { server: { name: 'Atrium', version: ATRIUM_VERSION } };
  }

  /**
   * `/.well-known/matrix/server` delegates federation to another host:port.
   * Without `well_known.server` configured there is no delegation, and a 404
   * tells other servers to use the server name as it is.
   */
  @Get('.well-known/matrix/server')
  wellKnownServer(): { 'm.server': string } {
    if (!this.config.well_known.server) throw Errors.notFound('No delegation configured');
    return { 'm.server': this.config.well_known.server };
  }
}

/** The federation front end: /_matrix/federation/** (transactions, joins, backfill… arrive with the federation work). */
@Module({
  imports: [FederationClientModule, FederationEdusModule, FederationQueryModule],
  controllers: [FederationDiscoveryController, OpenIdUserInfoController, FederationMembershipController, FederationTransactionsController, FederationRoomEventsController],
  providers: [
    { provide: FEDERATION_OPENID_TOKEN_STORE, useFactory: (store: DocumentStore) => OpenIdTokenStore.open(store), inject: [DOCUMENT_STORE] },
    // Room reads for /state, /event, /backfill… and the ACL checks of /send (rooms/, transactions/).
    { provide: ROOM_STORE, useFactory: (store: DocumentStore) => RoomStore.open(store), inject: [DOCUMENT_STORE] },
    { provide: INBOUND_TRANSACTION_STORE, useFactory: (store: DocumentStore) => InboundTransactionStore.open(store), inject: [DOCUMENT_STORE] },
    // X-Matrix on every /_matrix/federation/** route of the app (auth/x-matrix.guard.ts).
    XMatrixGuard,
    { provide: APP_GUARD, useExisting: XMatrixGuard },
  ],
  exports: [XMatrixGuard],
})
export class FederationInboundModule {}
