import { Module } from '@nestjs/common';
import { RoomStore } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { DOCUMENT_STORE } from '@atrium/platform';
import { FilterController } from './filter.controller';
import { FilterStore } from './filter-store';
import { MessagesController } from './messages.controller';
import { SYNC_SECTION_CLASSES } from './sync-section-list';
import { SyncController } from './sync.controller';
import { SyncNotifier } from './sync-notifier';
import { SYNC_ROOM_STORE } from './sync-rooms';
import { provideSyncSections } from './sync-sections';
import { SyncService } from './sync.service';
import { RoomServerClient } from '../rooms/room-server.client';

/**
 * /sync, /messages, /context and the filter endpoints (docs/client-server-design.md:
 * apps/client-api/src/sync/). Sections other modules contribute to /sync are
 * listed in sync-section-list.ts.
 */
@Module({
  controllers: [FilterController, SyncController, MessagesController],
  providers: [
    { provide: SYNC_ROOM_STORE, useFactory: (store: DocumentStore) => RoomStore.open(store), inject: [DOCUMENT_STORE] },
    FilterStore,
    SyncNotifier,
    SyncService,
    // /messages asks the room server to backfill (docs/federation-design.md "Backfill (as built)").
    RoomServerClient,
    ...SYNC_SECTION_CLASSES,
    provideSyncSections(SYNC_SECTION_CLASSES),
  ],
  exports: [SyncNotifier, SyncService, FilterStore],
})
export class SyncModule {}
