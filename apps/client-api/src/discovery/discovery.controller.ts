import { Controller, Get, Inject } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { CONFIG } from '@atrium/platform';

/**
 * Spec versions this server speaks (client-server-api "API Versions"); clients
 * such as matrix-js-sdk check it before using newer endpoints (the SDK's
 * extended profiles need v1.16). What the versions after v1.12 added for a
 * server is here: reporting rooms and users, M_USER_SUSPENDED, one-time keys
 * in upload order, ACLs on EDUs (v1.13–v1.14); room_summary and the
 * hierarchy's new fields (v1.15); profile fields, `format` on GET state,
 * use_state_after, room version 12, m.room.create in stripped state (v1.16);
 * no legacy mention rules (v1.17); admin lock and suspend, m.room.redaction
 * through /send, invite permission, Policy Servers (v1.18); mutual_rooms and
 * `unsigned.replaces_state` (v1.19). Left out, as optional or tied to APIs this
 * server does not offer: OAuth 2.0 login, application services, the
 * m.forget_forced_upon_leave capability.
 */
export const SUPPORTED_VERSIONS = [
  'r0.0.1', 'r0.1.0', 'r0.2.0', 'r0.3.0', 'r0.4.0', 'r0.5.0', 'r0.6.0', 'r0.6.1',
  'v1.1', 'v1.2', 'v1.3', 'v1.4', 'v1.5', 'v1.6', 'v1.7', 'v1.8', 'v1.9', 'v1.10', 'v1.11', 'v1.12', 'v1.13', 'v1.14', 'v1.15', 'v1.16', 'v1.17', 'v1.18', 'v1.19',
];

/** Spec: data/api/client-server/versions.yaml and wellknown.yaml. */
@Controller()
export class DiscoveryController {
  constructor(@Inject(CONFIG) private readonly config: AtriumConfig) {}

  @Get('_matrix/client/versions')
  versions(): { versions: string[]; unstable_features: Record<string, boolean> } {
    return { versions: SUPPORTED_VERSIONS, unstable_features: {} };
  }

  /** "Server Discovery": where clients of this server name find the homeserver. */
  @Get('.well-known/matrix/client')
  wellKnownClient(): { 'm.homeserver': { base_url: string } } {
    return { 'm.homeserver': { base_url: this.config.public_baseurl.replace(/\/$/, '') } };
  }
}
