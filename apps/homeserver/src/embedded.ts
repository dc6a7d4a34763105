import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { AtriumConfig } from '@atrium/config';
import { createHttpApp, openPlatform, type RunningService } from '@atrium/platform';
import { ClientApiModule } from '@atrium/app-client-api';
import { FederationInboundModule } from '@atrium/app-federation-inbound';
import { FederationClientModule } from '@atrium/federation-client';
import { FederationOutboundModule } from '@atrium/app-federation-outbound';
import { KeyServerModule } from '@atrium/app-key-server';
import { MediaRepoModule } from '@atrium/app-media-repo';
import { PushGatewayModule } from '@atrium/app-push-gateway';
import { RoomServerModule } from '@atrium/app-room-server';

/** Every service module; the embedded mode serves them all from one Nest app. */
export const ALL_SERVICE_MODULES = [
  ClientApiModule,
  FederationInboundModule,
  FederationOutboundModule,
  KeyServerModule,
  MediaRepoModule,
  PushGatewayModule,
  RoomServerModule,
];

/**
 * The embedded mode: one process, every service, the storage/bus/cache the
 * config names (SQLite, in-process bus and memory cache by default). Clients
 * connect on `listeners.client`, other servers on `listeners.federation`
 * (over TLS when a certificate is configured). Both ports reach the same app.
 */
export async function startEmbedded(config: AtriumConfig): Promise<RunningService> {
  const platform = await openPlatform(config, 'atrium', { createSigningKey: true });
  const app = await createHttpApp({ platform, modules: [FederationClientModule, ...ALL_SERVICE_MODULES] });
  await app.listen({ host: config.listeners.client.host, port: config.listeners.client.port });
  const clientPort = (app.getHttpServer().address() as AddressInfo).port;

  const fastify = app.getHttpAdapter().getInstance();
  const handler = (req: Parameters<typeof fastify.routing>[0], res: Parameters<typeof fastify.routing>[1]): void => fastify.routing(req, res);
  const federation = config.listeners.federation;
  let federationServer: Server;
  if (federation.tls_certificate_path && federation.tls_private_key_path) {
    federationServer = createHttpsServer(
      { cert: readFileSync(federation.tls_certificate_path), key: readFileSync(federation.tls_private_key_path) },
      handler,
    );
  } else {
    federationServer = createHttpServer(handler);
  }
  await new Promise<void>((resolve, reject) => {
    federationServer.once('error', reject);
    federationServer.listen(federation.port, federation.host, () => resolve());
  });
  const federationPort = (federationServer.address() as AddressInfo).port;
  platform.telemetry.logger.info({ clientPort, federationPort, serverName: config.server_name }, 'Atrium (embedded) listening');

  return {
    platform,
    ports: [clientPort, federationPort],
    async stop() {
      await new Promise<void>((resolve) => federationServer.close(() => resolve()));
      await app.close();
      await platform.close();
    },
  };
}
