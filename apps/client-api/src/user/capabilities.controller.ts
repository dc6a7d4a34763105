import { Controller, Get, Inject, UseGuards } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import type { AccountStore } from '@atrium/accounts';
import { AccessTokenGuard, AllowGuests, CurrentRequester, type Requester } from '@atrium/http';
import { ROOM_VERSIONS } from '@atrium/matrix';
import { ACCOUNT_STORE, CONFIG } from '@atrium/platform';
import { CLIENT_PREFIXES } from '../auth/auth.controller';

interface BooleanCapability {
  enabled: boolean;
}

export interface Capabilities {
  'm.room_versions': { default: string; available: Record<string, 'stable' | 'unstable'> };
  'm.change_password': BooleanCapability;
  'm.set_displayname': BooleanCapability;
  'm.set_avatar_url': BooleanCapability;
  'm.profile_fields': BooleanCapability;
  'm.3pid_changes': BooleanCapability;
  'm.get_login_token': BooleanCapability;
  /** v1.18, only for server administrators ("omitted altogether if suspend and lock would be false"). */
  'm.account_moderation'?: { suspend: boolean; lock: boolean };
}

/** Spec: data/api/client-server/capabilities.yaml and client-server-api "Capabilities negotiation". */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class CapabilitiesController {
  constructor(
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
  ) {}

  @Get('capabilities')
  @AllowGuests()
  async capabilities(@CurrentRequester() requester: Requester): Promise<{ capabilities: Capabilities }> {
    const available: Record<string, 'stable' | 'unstable'> = {};
    for (const version of Object.values(ROOM_VERSIONS)) available[version.id] = version.stability;
    const capabilities: Capabilities = {
      // "The `default` version is the version the server is using to create new rooms."
      'm.room_versions': { default: this.config.rooms.default_version, available },
      // POST /account/password is served (account.controller.ts).
      'm.change_password': { enabled: true },
      // Every profile field may be changed; the deprecated flags mirror it for older clients.
      'm.set_displayname': { enabled: true },
      'm.set_avatar_url': { enabled: true },
      'm.profile_fields': { enabled: true },
      // Atrium keeps no third-party identifiers (user/threepid.controller.ts).
      'm.3pid_changes': { enabled: false },
      // POST /login/get_token is not offered.
      'm.get_login_token': { enabled: false },
    };
    // Server administrators may lock and suspend accounts (misc/moderation.ts).
    if ((await this.accounts.getUser(requester.userId))?.is_admin) capabilities['m.account_moderation'] = { suspend: true, lock: true };
    return { capabilities };
  }
}
