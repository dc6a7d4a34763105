import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import type { AtriumConfig } from '@atrium/config';
import { DehydratedDeviceStore, E2eeService, parseDehydratedDeviceUpload, publishDeviceDeleted, type DehydratedDevice } from '@atrium/e2ee';
import { AccessTokenGuard, CurrentRequester, Errors, optionalJsonObject, requireJsonObject, type Requester } from '@atrium/http';
import { ACCOUNT_STORE, BUS, CONFIG, DOCUMENT_STORE } from '@atrium/platform';
import type { DocumentStore } from '@atrium/storage';
import { UserDataStores } from '../user/user-data.stores';

/** MSC3814's unstable prefix ("Unstable prefix"): `/unstable/org.matrix.msc3814.v1/dehydrated_device`. */
const MSC3814 = '_matrix/client/unstable/org.matrix.msc3814.v1';
/** Messages per `/events` batch, as a /sync response's to-device limit. */
const EVENTS_BATCH = 100;

/**
 * Dehydrated devices (MSC3814, as Element uses it). In client-api, which
 * the cluster's path router reaches for every /_matrix/client/ path not
 * listed elsewhere, because the device is an account device and its
 * messages are in the to-device store; the keys go through @atrium/e2ee as
 * a /keys/upload would, and the device's data through its
 * DehydratedDeviceStore.
 */
@Controller(MSC3814)
@UseGuards(AccessTokenGuard)
export class DehydratedDeviceController {
  private store?: Promise<DehydratedDeviceStore>;

  constructor(
    @Inject(DOCUMENT_STORE) private readonly documents: DocumentStore,
    @Inject(BUS) private readonly bus: Bus,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
    private readonly userData: UserDataStores,
  ) {}

  private devices(): Promise<DehydratedDeviceStore> {
    this.store ??= DehydratedDeviceStore.open(this.documents);
    return this.store;
  }

  /** Drops a replaced or deleted dehydrated device: the account device, and (through the bus, as DELETE /devices does) its keys. */
  private async dropDevice(userId: string, deviceId: string): Promise<void> {
    await this.accounts.deleteDevice(userId, deviceId);
    await publishDeviceDeleted(this.bus, userId, deviceId);
  }

  /**
   * PUT /dehydrated_device: creates the device with its keys (the same
   * structure as /keys/upload, checked the same way) and stores
   * `device_data`; "uploading a new dehydrated device will remove any
   * previously-set dehydrated device". Nothing is kept if the keys are refused.
   */
  @Put('dehydrated_device')
  async put(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<{ device_id: string }> {
    const parsed = parseDehydratedDeviceUpload(requireJsonObject(rawBody));
    if ('error' in parsed) throw parsed.missing ? Errors.missingParam(parsed.missing) : Errors.invalidParam(parsed.error);
    const userId = requester.userId;
    if (parsed.deviceId === requester.deviceId) throw Errors.invalidParam('device_id is the ID of the device making the request');
    const existing = await this.accounts.getDevice(userId, parsed.deviceId);
    const devices = await this.devices();
    const current = await devices.get(userId);
    // Another, ordinary device of the user must not be taken over.
    if (existing && current?.device_id !== parsed.deviceId) throw Errors.invalidParam('device_id names an existing device');
    await this.accounts.ensureDevice(userId, parsed.deviceId, parsed.displayName, null);
    const e2ee = await E2eeService.shared(this.documents, this.bus, this.accounts, this.config.server_name);
    try {
      await e2ee.upload(userId, parsed.deviceId, parsed.keys);
    } catch (err) {
      if (!existing) await this.accounts.deleteDevice(userId, parsed.deviceId);
      throw err;
    }
    const previous = await devices.put(userId, parsed.deviceId, parsed.deviceData);
    if (previous && previous.device_id !== parsed.deviceId) await this.dropDevice(userId, previous.device_id);
    return { device_id: parsed.deviceId };
  }

  /** GET /dehydrated_device: the device ID and data, or 404 M_NOT_FOUND "if no dehydrated device is available". */
  @Get('dehydrated_device')
  async get(@CurrentRequester() requester: Requester): Promise<DehydratedDevice> {
    const device = await (await this.devices()).get(requester.userId);
    if (!device) throw Errors.notFound('No dehydrated device');
    return device;
  }

  /** DELETE /dehydrated_device: answers the ID of the device removed (404 M_NOT_FOUND when there is none). */
  @Delete('dehydrated_device')
  async remove(@CurrentRequester() requester: Requester): Promise<{ device_id: string }> {
    const device = await (await this.devices()).delete(requester.userId);
    if (!device) throw Errors.notFound('No dehydrated device');
    await this.dropDevice(requester.userId, device.device_id);
    return { device_id: device.device_id };
  }

  /**
   * POST /dehydrated_device/{device_id}/events: the device's to-device
   * messages in batches. Messages are not deleted ("unlike the /sync
   * endpoint, the server should not delete any to-device messages delivered
   * in previous batches"); `next_batch` is always given, and with the last
   * one the answer is an empty `events`. Another device ID: 403 M_FORBIDDEN.
   */
  @Post('dehydrated_device/:deviceId/events')
  @HttpCode(200)
  async events(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string, @Body() rawBody: unknown): Promise<{ events: unknown[]; next_batch: string }> {
    const body = optionalJsonObject(rawBody);
    const { events, last } = await this.batch(requester.userId, deviceId, body['next_batch']);
    return { events, next_batch: String(last) };
  }

  /**
   * GET /dehydrated_device/{device_id}/events?from=: the form matrix-js-sdk
   * (43) and the Rust SDK call. They read batches while `next_batch` is
   * present, so here the empty batch after the last one has none (the POST
   * form keeps the MSC text's `next_batch` on every answer).
   */
  @Get('dehydrated_device/:deviceId/events')
  async eventsByGet(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string, @Query('from') from?: string): Promise<{ events: unknown[]; next_batch?: string }> {
    const { events, last } = await this.batch(requester.userId, deviceId, from);
    return events.length > 0 ? { events, next_batch: String(last) } : { events };
  }

  private async batch(userId: string, deviceId: string, token: unknown): Promise<{ events: unknown[]; last: number }> {
    const device = await (await this.devices()).get(userId);
    if (!device || device.device_id !== deviceId) throw Errors.forbidden('Not the dehydrated device of this user');
    let after = 0;
    if (token !== undefined) {
      if (typeof token !== 'string' || !/^[0-9]{1,15}$/.test(token)) throw Errors.invalidParam('next_batch is not a token this server gave');
      after = Number(token);
    }
    return this.userData.toDevice.peek(userId, deviceId, after, EVENTS_BATCH);
  }
}
