import { Module } from '@nestjs/common';
import { DOCUMENT_STORE } from '@atrium/platform';
import { ROOM_STORE, RoomStore } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { ProfileStore } from '@atrium/user-data';
import { DirectoryController } from './directory.controller';
import { RemoteMembership } from './remote-membership';
import { RoomServerClient } from './room-server.client';
import { RoomsController } from './rooms.controller';
import { RoomsV1Controller } from './rooms-v1.controller';
import { RoomsService } from './rooms.service';

/**
 * The room endpoints of the Client-Server API (docs/client-server-design.md:
 * apps/client-api/src/rooms/). Exports ROOM_STORE, RoomsService and
 * RoomServerClient for the sync and history endpoints.
 */
@Module({
  controllers: [RoomsController, DirectoryController, RoomsV1Controller],
  providers: [
    { provide: ROOM_STORE, useFactory: (store: DocumentStore) => RoomStore.open(store), inject: [DOCUMENT_STORE] },
    { provide: ProfileStore, useFactory: (store: DocumentStore) => ProfileStore.open(store), inject: [DOCUMENT_STORE] },
    RoomsService,
    RoomServerClient,
    RemoteMembership,
  ],
  exports: [ROOM_STORE, RoomsService, RoomServerClient],
})
export class RoomsModule {}
