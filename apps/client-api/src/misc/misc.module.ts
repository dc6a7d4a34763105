import { Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { OpenIdTokenStore } from '@atrium/accounts';
import { DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import { RoomsModule } from '../rooms/rooms.module';
import { MiscController, MutualRoomsController, OPENID_TOKEN_STORE } from './misc.controller';
import { AccountModerationController, SuspensionInterceptor } from './moderation';
import { AppserviceController, LoginExtrasController, ThirdPartyController, WellKnownExtrasController } from './unsupported.controller';

/**
 * The remaining Client-Server operations outside rooms, sync and keys (issue 4):
 * TURN credentials, OpenID tokens, whois, mutual rooms, account locking and
 * suspension by administrators, and the documented
 * answers of features this server does not offer (third-party networks,
 * application services, SSO, login tokens, OAuth 2.0, support and policy
 * server well-knowns).
 */
@Module({
  imports: [RoomsModule],
  controllers: [MiscController, AccountModerationController, MutualRoomsController, ThirdPartyController, AppserviceController, LoginExtrasController, WellKnownExtrasController],
  providers: [
    { provide: OPENID_TOKEN_STORE, useFactory: (store: DocumentStore) => OpenIdTokenStore.open(store), inject: [DOCUMENT_STORE] },
    { provide: APP_INTERCEPTOR, useClass: SuspensionInterceptor },
  ],
})
export class MiscModule {}
