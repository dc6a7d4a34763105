import { createHash } from 'node:crypto';
import { Body, Controller, Inject, Param, Put, UseGuards } from '@nestjs/common';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { publishOutgoingEdu } from '@atrium/federation-client';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { domainOfId, isValidUserId, type JsonObject } from '@atrium/matrix';
import { BUS, CONFIG } from '@atrium/platform';
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
  constructor(
    private readonly stores: UserDataStores,
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(BUS) private readonly bus: Bus,
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
    const remote = new Map<string, Record<string, Record<string, unknown>>>();
    for (const [userId, byDevice] of Object.entries(messages)) {
      if (!isValidUserId(userId, 'historical')) throw Errors.invalidParam(`${userId} is not a valid user ID`);
      if (!isObject(byDevice)) throw Errors.badJson(`messages for ${userId} must be an object`);
      for (const content of Object.values(byDevice)) {
        if (!isObject(content)) throw Errors.badJson(`message contents for ${userId} must be objects`);
      }
      const server = domainOfId(userId) ?? '';
      if (server !== this.config.server_name) {
        // "If the client sends messages to users on remote domains, those messages should be sent on to
        // the remote servers via federation": one m.direct_to_device EDU per server, below.
        const forServer = remote.get(server) ?? {};
        forServer[userId] = byDevice as Record<string, unknown>;
        remote.set(server, forServer);
        continue;
      }
      deliveries.push(...(await this.localDeliveries(userId, byDevice as Record<string, Record<string, unknown>>)));
    }
    // Handed over before the local write, so a crash in between loses nothing; a retried request hands them
    // over again with the same message_id, which receivers use to drop the repeat (server-server-api "Send-to-device messaging").
    for (const [server, forServer] of remote) {
      const messageId = createHash('sha256').update(`${requester.userId}\n${requester.deviceId}\n${txnId}\n${server}`).digest('base64url').slice(0, 32);
      await publishOutgoingEdu(this.bus, {
        edu_type: 'm.direct_to_device',
        content: { sender: requester.userId, type: eventType, message_id: messageId, messages: forServer as JsonObject },
        destinations: [server],
      });
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
