import { Module } from '@nestjs/common';
import { FederationClientModule } from '@atrium/federation-client';
import { AccountController } from './account/account.controller';
import { AuthController, AuthV3OnlyController } from './auth/auth.controller';
import { AuthService } from './auth/auth.service';
import { DevicesController } from './devices/devices.controller';
import { DiscoveryController } from './discovery/discovery.controller';
import { EphemeralModule } from './ephemeral/ephemeral.module';
import { SyncModule } from './sync/sync.module';
import { RoomsModule } from './rooms/rooms.module';
import { UserDataModule } from './user/user-data.module';
import { RelationsModule } from './relations/relations.module';
import { SearchModule } from './search/search.module';
import { ReportingModule } from './reporting/reporting.module';
import { PushModule } from './push/push.module';
import { UserDirectoryModule } from './user-directory/user-directory.module';
import { IgnoredUsersModule } from './ignored-users/ignored-users';
import { InvitePermissionModule } from './invite-permission/invite-permission';
import { MiscModule } from './misc/misc.module';
import { LegacyModule } from './legacy/legacy.module';
import { SpacesModule } from './spaces/hierarchy.controller';

/** The Client-Server API front end: /_matrix/client/** and /.well-known/matrix/client. */
@Module({
  imports: [FederationClientModule, RoomsModule, UserDataModule, SyncModule, EphemeralModule, RelationsModule, SearchModule, ReportingModule, PushModule, UserDirectoryModule, IgnoredUsersModule, InvitePermissionModule, MiscModule, LegacyModule, SpacesModule],
  controllers: [DiscoveryController, AuthController, AuthV3OnlyController, AccountController, DevicesController],
  providers: [AuthService],
  exports: [AuthService],
})
export class ClientApiModule {}
