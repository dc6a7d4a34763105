import { Module } from '@nestjs/common';
import { DOCUMENT_STORE } from '@atrium/platform';
import { RoomStore } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { ProfileStore } from '@atrium/user-data';
import { FederationHierarchyController } from './hierarchy.controller';
import { FederationPublicRoomsController } from './public-rooms.controller';
import { FederationQueryController } from './query.controller';
import { QUERY_PROFILE_STORE, QUERY_ROOM_STORE } from './tokens';

/** server-server-api "Querying for information", "Published Room Directory" and "Spaces" (/hierarchy). */
@Module({
  controllers: [FederationQueryController, FederationPublicRoomsController, FederationHierarchyController],
  providers: [
    { provide: QUERY_ROOM_STORE, useFactory: (store: DocumentStore) => RoomStore.open(store), inject: [DOCUMENT_STORE] },
    { provide: QUERY_PROFILE_STORE, useFactory: (store: DocumentStore) => ProfileStore.open(store), inject: [DOCUMENT_STORE] },
  ],
})
export class FederationQueryModule {}
