import { Body, Controller, Get, HttpCode, Inject, Param, Post, UseGuards } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { E2eeService } from '@atrium/e2ee';
import { XMatrixGuard } from '@atrium/app-federation-inbound';
import { OutboundStore } from '@atrium/app-federation-outbound';
import { Errors, requireJsonObject } from '@atrium/http';
import { isValidUserId } from '@atrium/matrix';
import { ACCOUNT_STORE, BUS, CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';

/**
 * The federation side of end-to-end encryption keys: server-server-api
 * "End-to-End Encryption" (user_keys.yaml: POST /user/keys/query,
 * /user/keys/claim) and "Device Management" (user_devices.yaml: GET
 * /user/devices/{userId}). key-server serves them because it owns the keys;
 * the path router sends `/_matrix/federation/v1/user/(keys|devices)/` here.
 * Every route needs a signed request: XMatrixGuard (federation-inbound's
 * guard; in the embedded app it also runs app-wide, which is harmless).
 * Only users of this server are answered; the logic is E2eeService's.
 */
@Controller('_matrix/federation/v1/user')
@UseGuards(XMatrixGuard)
export class FederationUserKeysController {
  constructor(
    @Inject(DOCUMENT_STORE) private readonly documents: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  private service(): Promise<E2eeService> {
    return E2eeService.shared(this.documents, this.bus, this.accounts, this.config.server_name);
  }

  @Post('keys/query')
  @HttpCode(200)
  async query(@Body() body: unknown) {
    return (await this.service()).federationQuery(requireJsonObject(body));
  }

  @Post('keys/claim')
  @HttpCode(200)
  async claim(@Body() body: unknown) {
    return (await this.service()).federationClaim(requireJsonObject(body));
  }

  /** `stream_id`: the ID of the user's last m.device_list_update (federation-outbound's stream), so the asker can apply our next EDU. */
  @Get('devices/:userId')
  async devices(@Param('userId') userId: string) {
    if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`Invalid user ID ${JSON.stringify(userId)}`);
    const service = await this.service();
    if (!service.isLocal(userId)) throw Errors.invalidParam(`${userId} is not a user of this server`);
    const streamId = await (await OutboundStore.shared(this.documents)).deviceListStreamId(userId);
    return service.userDevices(userId, streamId);
  }
}
