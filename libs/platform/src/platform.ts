import { AccountStore } from '@atrium/accounts';
import { openBus, type Bus } from '@atrium/bus';
import { openCache, type Cache } from '@atrium/cache';
import type { AtriumConfig } from '@atrium/config';
import { RateLimiter, UserInteractiveAuth } from '@atrium/http';
import { loadSigningKey, type SigningKey } from './signing-key';
import { openDocumentStore, type DocumentStore } from '@atrium/storage';
import { initTelemetry, tracedBus, type Telemetry } from '@atrium/telemetry';

/**
 * The resources one process holds: storage, bus, cache, telemetry, the
 * server's signing key and the account store. The embedded mode opens one
 * Platform for every service in the process; the cluster mode opens one per
 * service process, each connecting to the shared MongoDB, NATS and Redis.
 */
export interface Platform {
  config: AtriumConfig;
  /** `atrium` in embedded mode, the app name (client-api, room-server…) in cluster mode. */
  serviceName: string;
  store: DocumentStore;
  bus: Bus;
  cache: Cache;
  telemetry: Telemetry;
  signingKey: SigningKey;
  accounts: AccountStore;
  rateLimiter: RateLimiter;
  uia: UserInteractiveAuth;
  close(): Promise<void>;
}

export interface OpenPlatformOptions {
  /** Create the signing key file if missing (embedded mode only). */
  createSigningKey?: boolean;
}

export async function openPlatform(config: AtriumConfig, serviceName: string, options: OpenPlatformOptions = {}): Promise<Platform> {
  const telemetry = initTelemetry({
    serviceName,
    otlpEndpoint: config.telemetry.otlp_endpoint,
    logLevel: config.telemetry.log_level,
  });
  const store = await openDocumentStore(config.storage.url);
  const bus = tracedBus(await openBus(config.bus.url, { name: serviceName }), telemetry, serviceName);
  const cache = await openCache(config.cache.url);
  const signingKey = await loadSigningKey(config.signing_key_path, options.createSigningKey ?? false);
  const accounts = await AccountStore.open(store);
  return {
    config,
    serviceName,
    store,
    bus,
    cache,
    telemetry,
    signingKey,
    accounts,
    rateLimiter: new RateLimiter(cache, config.rate_limits.enabled),
    uia: new UserInteractiveAuth(cache),
    async close() {
      await bus.close();
      await cache.close();
      await store.close();
      await telemetry.shutdown();
    },
  };
}
