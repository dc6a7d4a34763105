import { Global, Module } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import { ACCOUNT_STORE, BUS, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import { AccountDataController } from './account-data.controller';
import { CapabilitiesController } from './capabilities.controller';
import { PresenceController } from './presence.controller';
import { PresenceActivity, PresenceIdleSweep } from './presence-idle';
import { ProfileController } from './profile.controller';
import { ProfilePropagation } from './profile-propagation';
import { ThreepidController, ThreepidTokenController } from './threepid.controller';
import { ToDeviceController } from './to-device.controller';
import { DehydratedDeviceController } from '../e2ee/dehydrated-device.controller';
import { UserDataStores } from './user-data.stores';
import { RemoteProfiles } from './remote-profiles';

/**
 * User data of the Client-Server API (docs/client-server-design.md): account
 * data and tags, profiles, presence, send-to-device, capabilities and the
 * 3PID endpoints Atrium refuses.
 *
 * Global, so that the /sync sections of user-sync-sections.ts, which the
 * sync module instantiates from sync/sync-section-list.ts, can inject the
 * stores without the sync module importing this one.
 */
@Global()
@Module({
  controllers: [
    AccountDataController,
    ProfileController,
    PresenceController,
    CapabilitiesController,
    ToDeviceController,
    // MSC3814 dehydrated devices: an account device reading the to-device store.
    DehydratedDeviceController,
    ThreepidController,
    ThreepidTokenController,
  ],
  providers: [
    {
      provide: UserDataStores,
      useFactory: (store: DocumentStore, bus: Bus, accounts: AccountStore) => UserDataStores.open(store, bus, accounts),
      inject: [DOCUMENT_STORE, BUS, ACCOUNT_STORE],
    },
    ProfilePropagation,
    RemoteProfiles,
    PresenceIdleSweep,
    PresenceActivity,
  ],
  exports: [UserDataStores, PresenceActivity],
})
export class UserDataModule {}
