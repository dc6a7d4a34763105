import { Body, Controller, Delete, Get, HttpCode, Inject, Param, Post, Put, UseGuards } from '@nestjs/common';
import type { AccountStore, DeviceRecord } from '@atrium/accounts';
import {
  AccessTokenGuard,
  CurrentRequester,
  Errors,
  optionalString,
  optionalStringArray,
  requireJsonObject,
  optionalJsonObject,
  type Requester,
  type UserInteractiveAuth,
} from '@atrium/http';
import { ACCOUNT_STORE, BUS, USER_INTERACTIVE_AUTH } from '@atrium/platform';
import { AuthService } from '../auth/auth.service';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import type { Bus } from '@atrium/bus';
import { publishDeviceDeleted } from '@atrium/e2ee';

interface DeviceView {
  device_id: string;
  display_name?: string;
  last_seen_ip?: string;
  last_seen_ts?: number;
}

function view(device: DeviceRecord): DeviceView {
  const out: DeviceView = { device_id: device.device_id };
  if (device.display_name !== null) out.display_name = device.display_name;
  if (device.last_seen_ip !== null) out.last_seen_ip = device.last_seen_ip;
  if (device.last_seen_ts !== null) out.last_seen_ts = device.last_seen_ts;
  return out;
}

/** Spec: data/api/client-server/device_management.yaml ("Device management"). */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class DevicesController {
  constructor(
    private readonly auth: AuthService,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(USER_INTERACTIVE_AUTH) private readonly uia: UserInteractiveAuth,
    /** To tell key-server a device went (its E2EE keys go, its user's device list changes: @atrium/e2ee). */
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  @Get('devices')
  async list(@CurrentRequester() requester: Requester): Promise<{ devices: DeviceView[] }> {
    return { devices: (await this.accounts.listDevices(requester.userId)).map(view) };
  }

  @Get('devices/:deviceId')
  async get(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string): Promise<DeviceView> {
    const device = await this.accounts.getDevice(requester.userId, deviceId);
    if (!device) throw Errors.notFound('No such device');
    return view(device);
  }

  /** "If not given, the display name is unchanged"; 404 when the user has no such device. */
  @Put('devices/:deviceId')
  async update(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const displayName = optionalString(body, 'display_name');
    const device = await this.accounts.getDevice(requester.userId, deviceId);
    if (!device) throw Errors.notFound('No such device');
    if (displayName !== undefined) await this.accounts.renameDevice(requester.userId, deviceId, displayName);
    return {};
  }

  /** DELETE /devices/{deviceId}: user-interactive auth, then the device and its tokens go. */
  @Delete('devices/:deviceId')
  async remove(@CurrentRequester() requester: Requester, @Param('deviceId') deviceId: string, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = optionalJsonObject(rawBody);
    await this.authorise(requester, body, `delete_devices:${requester.userId}:${deviceId}`);
    await this.accounts.deleteDevice(requester.userId, deviceId);
    await publishDeviceDeleted(this.bus, requester.userId, deviceId);
    return {};
  }

  @Post('delete_devices')
  @HttpCode(200)
  async removeMany(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const devices = optionalStringArray(body, 'devices');
    if (devices === undefined) throw Errors.missingParam('devices');
    await this.authorise(requester, body, `delete_devices:${requester.userId}:${[...devices].sort().join(',')}`);
    for (const deviceId of devices) {
      await this.accounts.deleteDevice(requester.userId, deviceId);
      await publishDeviceDeleted(this.bus, requester.userId, deviceId);
    }
    return {};
  }

  private async authorise(requester: Requester, body: Record<string, unknown>, operation: string): Promise<void> {
    await this.uia.check({
      auth: body.auth,
      flows: this.auth.passwordFlows,
      operation,
      verifiers: { 'm.login.password': this.auth.passwordStage(requester) },
    });
  }
}
