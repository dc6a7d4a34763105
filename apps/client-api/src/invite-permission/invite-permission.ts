import { Global, Injectable, Module } from '@nestjs/common';
import { invitesBlockedBy } from '@atrium/user-data';
import { UserDataStores } from '../user/user-data.stores';

/**
 * "Invite permission" (client-server-api modules/invite_permission.md): the
 * room server refuses new invites to a user who blocks them; /sync leaves out
 * the invites already held ("MUST NOT be served over client synchronisation
 * endpoints"). Read per request like the ignored users, so turning blocking
 * off brings those invites back at the next sync, which the spec allows.
 */
@Injectable()
export class InvitePermission {
  constructor(private readonly stores: UserDataStores) {}

  blocksInvites(userId: string): Promise<boolean> {
    return invitesBlockedBy(this.stores.accountData, userId);
  }
}

/** Global so that the sync module can inject InvitePermission without importing this module. */
@Global()
@Module({ providers: [InvitePermission], exports: [InvitePermission] })
export class InvitePermissionModule {}
