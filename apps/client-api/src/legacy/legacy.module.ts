import { Module } from '@nestjs/common';
import { DOCUMENT_STORE } from '@atrium/platform';
import { StreamAllocator } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { AccountDataStore } from '@atrium/user-data';
import { RoomsModule } from '../rooms/rooms.module';
import { SyncModule } from '../sync/sync.module';
import { LEGACY_ACCOUNT_DATA, LegacySyncController } from './legacy.controller';

/**
 * The deprecated pre-/sync endpoints (GET /events, /initialSync,
 * /rooms/{roomId}/initialSync, /events/{eventId}), on the sync module's
 * service, notifier and history rules.
 */
@Module({
  imports: [RoomsModule, SyncModule],
  controllers: [LegacySyncController],
  providers: [
    {
      provide: LEGACY_ACCOUNT_DATA,
      // Only read here (changes()): the wake callback for writes is never called.
      useFactory: async (store: DocumentStore) => AccountDataStore.open(store, await StreamAllocator.open(store), async () => undefined),
      inject: [DOCUMENT_STORE],
    },
  ],
})
export class LegacyModule {}
