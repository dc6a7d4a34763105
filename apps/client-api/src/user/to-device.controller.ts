import { Body, Controller, Inject, Logger, Param, Put, UseGuards } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { domainOfId, isValidUserId } from '@atrium/matrix';
import { CONFIG } from '@atrium/platform';
import type { ToDeviceDelivery } from '@atrium/user-data';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { UserDataStores } from './user-data.stores';

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Spec: data/api/client-server/to_device.yaml and modules/send_to_device.md. */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class ToDeviceController {
  private readonly logger = new Logger('ToDeviceController');

  constructor(
    private readonly stores: UserDataStores,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  /**
   * PUT /sendToDevice/{eventType}/{txnId}. `messages` maps user ID → device
   * ID → content; "The device ID may also be `*`, meaning all known devices
   * for the user". The transaction ID makes a retry a no-op (per sending
   * device, as access tokens map to devices). Guests may call it (Guest access).
   */
  @Put('sendToDevice/:eventType/:txnId')
  @AllowGuests()
  async send(
    @CurrentRequester() requester: Requester,
    @Param('eventType') eventType: string,
    @Param('txnId') txnId: string,
    @Body() rawBody: unknown,
  ): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const messages = body.messages;
    if (messages === undefined) throw Errors.missingParam('messages');
    if (!isObject(messages)) throw Errors.badJson('"messages" must be an object');
    const deliveries: ToDeviceDelivery[] = [];
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`${userId} is not a valid user ID`);
      if (!isObject(byDevice)) throw Errors.badJson(`messages for ${userId} must be an object`);
      for (const content of Object.values(byDevice)) {
        if (!isObject(content)) throw Errors.badJson(`message contents for ${userId} must be objects`);
      }
      if (domainOfId(userId) !== this.config.server_name) {
        // "If the client sends messages to users on remote domains, those messages should be sent on to
        // the remote servers via federation": the m.direct_to_device EDU belongs to federation-outbound,
        // which does not send EDUs yet. They are dropped, and said so in the log.
        this.logger.warn(`to-device messages for remote user ${userId} dropped: federation EDUs not sent yet`);
        continue;
      }
      deliveries.push(...(await this.localDeliveries(userId, byDevice as Record<string, Record<string, unknown>>)));
    }
    await this.stores.toDevice.send(requester.userId, requester.deviceId, txnId, eventType, deliveries);
    return {};
  }

  /** Messages to a local user's devices; unknown devices (and users) get nothing, as there is nothing to deliver to. */
  private async localDeliveries(userId: string, byDevice: Record<string, Record<string, unknown>>): Promise<ToDeviceDelivery[]> {
    const known = new Set((await this.stores.accounts.listDevices(userId)).map((d) => d.device_id));
    const out = new Map<string, ToDeviceDelivery>();
    for (const [deviceId, content] of Object.entries(byDevice)) {
      const targets = deviceId === '*' ? [...known] : known.has(deviceId) ? [deviceId] : [];
      // An explicit device ID wins over `*` for that device (one message per device per transaction).
      for (const target of targets) if (deviceId !== '*' || !out.has(target)) out.set(target, { userId, deviceId: target, content });
    }
    return [...out.values()];
  }
}
