import { Module } from '@nestjs/common';
import { FederationClientModule } from '@atrium/federation-client';
import { DeviceDeletionConsumer } from './device-deletions';
import { E2eeKeysController } from './e2ee-keys.controller';
import { FederationUserKeysController } from './federation-user-keys.controller';
import { NotaryController } from './notary.controller';
import { OwnServerKeys, ServerKeysController } from './server-keys.controller';

/**
 * Server keys (/_matrix/key/v2/**) and the end-to-end encryption keys of
 * clients (/keys/**, /room_keys/**: E2eeKeysController, logic in @atrium/e2ee).
 * The notary (/_matrix/key/v2/query) answers from the KeyRing's cache of
 * remote keys (remote_server_keys), fetching when it has nothing fresh.
 */
@Module({ imports: [FederationClientModule], controllers: [ServerKeysController, NotaryController, E2eeKeysController, FederationUserKeysController], providers: [DeviceDeletionConsumer, OwnServerKeys] })
export class KeyServerModule {}
