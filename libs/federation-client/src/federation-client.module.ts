import { readFileSync } from 'node:fs';
import { Global, Inject, Injectable, Module, type OnModuleDestroy } from '@nestjs/common';
import { DEFAULT_IP_RANGE_BLOCKLIST, type AtriumConfig, type FederationConfig } from '@atrium/config';
import { CONFIG, DOCUMENT_STORE, SIGNING_KEY, TELEMETRY, type SigningKey } from '@atrium/platform';
import type { Telemetry } from '@atrium/telemetry';
import type { DocumentStore } from '@atrium/storage';
import { FEDERATION_CLIENT, KEY_RING, SERVER_RESOLVER } from './edus';
import { HttpFederationClient } from './client';
import { IpRangeFilter } from './ip-ranges';
import { StoredKeyRing } from './key-ring';
import { httpsWellKnownFetcher, ServerNameResolver } from './resolver';
import { HttpsTransport } from './transport';

/** The HTTPS transport shared by the resolver and the client; its keep-alive sockets close with the app. */
@Injectable()
export class FederationTransportHolder implements OnModuleDestroy {
  readonly transport: HttpsTransport;

  constructor(@Inject(CONFIG) config: AtriumConfig) {
    // A hand-built config (a test's) may predate the federation section.
    const federation: FederationConfig = config.federation ?? { trusted_ca_paths: [], ip_range_blocklist: [...DEFAULT_IP_RANGE_BLOCKLIST], ip_range_allowlist: [], trusted_key_servers: [] };
    this.transport = new HttpsTransport({
      extraCaPems: federation.trusted_ca_paths.map((path) => readFileSync(path, 'utf8')),
      ipFilter: new IpRangeFilter(federation.ip_range_blocklist, federation.ip_range_allowlist),
    });
  }

  onModuleDestroy(): void {
    this.transport.close();
  }
}

/**
 * The federation transport for any service module: FEDERATION_CLIENT,
 * KEY_RING and SERVER_RESOLVER, built from CONFIG, SIGNING_KEY and
 * DOCUMENT_STORE (PlatformModule). Global and static, so importing it from
 * several service modules of the embedded app yields one instance.
 */
@Global()
@Module({
  providers: [
    FederationTransportHolder,
    {
      provide: SERVER_RESOLVER,
      useFactory: (holder: FederationTransportHolder) => new ServerNameResolver({ fetchWellKnown: httpsWellKnownFetcher(holder.transport) }),
      inject: [FederationTransportHolder],
    },
    {
      provide: FEDERATION_CLIENT,
      useFactory: (config: AtriumConfig, signingKey: SigningKey, resolver: ServerNameResolver, holder: FederationTransportHolder, telemetry: Telemetry) =>
        new HttpFederationClient({ serverName: config.server_name, signingKey, resolver, transport: holder.transport, telemetry }),
      inject: [CONFIG, SIGNING_KEY, SERVER_RESOLVER, FederationTransportHolder, TELEMETRY],
    },
    {
      provide: KEY_RING,
      useFactory: (config: AtriumConfig, signingKey: SigningKey, store: DocumentStore, client: HttpFederationClient) =>
        new StoredKeyRing({
          store,
          client,
          serverName: config.server_name,
          signingKey,
          oldSigningKeys: config.old_signing_keys,
          trustedKeyServers: config.federation?.trusted_key_servers ?? [],
        }),
      inject: [CONFIG, SIGNING_KEY, DOCUMENT_STORE, FEDERATION_CLIENT],
    },
  ],
  exports: [FEDERATION_CLIENT, KEY_RING, SERVER_RESOLVER],
})
export class FederationClientModule {}
