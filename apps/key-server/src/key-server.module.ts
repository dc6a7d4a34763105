import { Module } from '@nestjs/common';
import { FederationClientModule } from '@atrium/federation-client';
import { DeviceDeletionConsumer } from './device-deletions';
import { E2eeKeysController } from './e2ee-keys.controller';
import { ServerKeysController } from './server-keys.controller';

/**
 * Server keys (/_matrix/key/v2/**) and the end-to-end encryption keys of
 * clients (/keys/**, /room_keys/**: E2eeKeysController, logic in @atrium/e2ee).
 * The notary and the remote key cache arrive with the federation work.
 */
@Module({ imports: [FederationClientModule], controllers: [ServerKeysController, E2eeKeysController], providers: [DeviceDeletionConsumer] })
export class KeyServerModule {}
