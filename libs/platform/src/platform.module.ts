import { DynamicModule, Global, Module } from '@nestjs/common';
import { ACCESS_TOKEN_AUTHENTICATOR, AccessTokenGuard } from '@atrium/http';
import type { Platform } from './platform';
import { OpsController } from './ops.controller';
import * as tokens from './tokens';

/**
 * Makes one opened Platform injectable everywhere in a Nest app. Global, so a
 * service module asks for `@Inject(BUS)` without importing this module.
 */
@Global()
@Module({})
export class PlatformModule {
  static forPlatform(platform: Platform): DynamicModule {
    const providers = [
      { provide: tokens.CONFIG, useValue: platform.config },
      { provide: tokens.DOCUMENT_STORE, useValue: platform.store },
      { provide: tokens.BUS, useValue: platform.bus },
      { provide: tokens.CACHE, useValue: platform.cache },
      { provide: tokens.TELEMETRY, useValue: platform.telemetry },
      { provide: tokens.SIGNING_KEY, useValue: platform.signingKey },
      { provide: tokens.ACCOUNT_STORE, useValue: platform.accounts },
      { provide: ACCESS_TOKEN_AUTHENTICATOR, useValue: platform.accounts },
      { provide: tokens.RATE_LIMITER, useValue: platform.rateLimiter },
      { provide: tokens.USER_INTERACTIVE_AUTH, useValue: platform.uia },
      { provide: 'ATRIUM_PLATFORM', useValue: platform },
      AccessTokenGuard,
    ];
    return {
      module: PlatformModule,
      controllers: [OpsController],
      providers,
      exports: providers.map((p) => ('provide' in p ? p.provide : p)),
    };
  }
}
