import { Module } from '@nestjs/common';
import { DOCUMENT_STORE } from '@atrium/platform';
import { RoomStore } from '@atrium/rooms';
import type { DocumentStore } from '@atrium/storage';
import { ProfileStore } from '@atrium/user-data';
import { UserDirectoryController } from './user-directory.controller';
import { UserDirectoryIndexer } from './user-directory-indexer';
import { UserDirectoryService } from './user-directory.service';
import { UserDirectoryStore } from './user-directory-store';
import { USER_DIRECTORY_PROFILES, USER_DIRECTORY_ROOM_STORE } from './user-directory.tokens';

/**
 * The user directory (issue 4; data/api/client-server/users.yaml): POST
 * /user_directory/search over an index kept from the room output log.
 * Reads rooms and profiles through their libraries' stores; writes only its
 * own `user_directory_*` collections.
 */
@Module({
  controllers: [UserDirectoryController],
  providers: [
    { provide: USER_DIRECTORY_ROOM_STORE, useFactory: (store: DocumentStore) => RoomStore.open(store), inject: [DOCUMENT_STORE] },
    { provide: USER_DIRECTORY_PROFILES, useFactory: (store: DocumentStore) => ProfileStore.open(store), inject: [DOCUMENT_STORE] },
    { provide: UserDirectoryStore, useFactory: (store: DocumentStore) => UserDirectoryStore.open(store), inject: [DOCUMENT_STORE] },
    UserDirectoryIndexer,
    UserDirectoryService,
  ],
})
export class UserDirectoryModule {}
