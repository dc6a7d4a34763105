import { Body, Controller, Get, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { hashPassword, type AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import {
  AccessTokenGuard,
  AllowGuests,
  CurrentRequester,
  optionalBoolean,
  requireJsonObject,
  requireString,
  type Requester,
  type UserInteractiveAuth,
} from '@atrium/http';
import { ACCOUNT_STORE, BUS, USER_INTERACTIVE_AUTH } from '@atrium/platform';
import { AuthService } from '../auth/auth.service';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { ROOM_SERVER_SUBJECTS, type LeaveAllRoomsRequest, type LeaveAllRoomsResponse } from '@atrium/app-room-server';
import { publishDeviceDeleted } from '@atrium/e2ee';

/** Spec: whoami.yaml, password_management.yaml, account_deactivation.yaml. */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class AccountController {
  constructor(
    private readonly auth: AuthService,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(USER_INTERACTIVE_AUTH) private readonly uia: UserInteractiveAuth,
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  @Get('account/whoami')
  @AllowGuests()
  whoami(@CurrentRequester() requester: Requester): { user_id: string; device_id: string; is_guest: boolean } {
    return { user_id: requester.userId, device_id: requester.deviceId, is_guest: requester.isGuest };
  }

  /**
   * POST /account/password. UIA with the current password; then, unless
   * `logout_devices` is false, "the user's other access tokens, and their
   * associated devices" are revoked.
   */
  @Post('account/password')
  @HttpCode(200)
  async changePassword(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<Record<string, never>> {
    const body = requireJsonObject(rawBody);
    const newPassword = requireString(body, 'new_password');
    this.auth.checkPasswordStrength(newPassword);
    const logoutDevices = optionalBoolean(body, 'logout_devices') ?? true;
    await this.uia.check({
      auth: body.auth,
      flows: this.auth.passwordFlows,
      operation: `password:${requester.userId}`,
      verifiers: { 'm.login.password': this.auth.passwordStage(requester) },
    });
    await this.accounts.setPasswordHash(requester.userId, await hashPassword(newPassword));
    if (logoutDevices) {
      const others = (await this.accounts.listDevices(requester.userId)).filter((d) => d.device_id !== requester.deviceId);
      await this.accounts.logoutOtherDevices(requester.userId, requester.deviceId);
      // Their keys go and device lists change, as for DELETE /devices.
      for (const device of others) await publishDeviceDeleted(this.bus, requester.userId, device.device_id);
    }
    return {};
  }

  /**
   * POST /account/deactivate. After UIA the account is closed for good: the
   * room server makes the user leave every room, then every device and token
   * is deleted. Atrium binds no third-party IDs, hence `no-support`.
   */
  @Post('account/deactivate')
  @HttpCode(200)
  async deactivate(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<{ id_server_unbind_result: string }> {
    const body = requireJsonObject(rawBody);
    await this.uia.check({
      auth: body.auth,
      flows: this.auth.passwordFlows,
      operation: `deactivate:${requester.userId}`,
      verifiers: { 'm.login.password': this.auth.passwordStage(requester) },
    });
    await this.bus.request<LeaveAllRoomsRequest, LeaveAllRoomsResponse>(ROOM_SERVER_SUBJECTS.leaveAllRooms, {
      user_id: requester.userId,
      reason: 'Account deactivated',
    });
    const devices = await this.accounts.listDevices(requester.userId);
    await this.accounts.deactivate(requester.userId);
    // The E2EE keys of every device go too, and those sharing rooms learn the device list changed (@atrium/e2ee).
    for (const device of devices) await publishDeviceDeleted(this.bus, requester.userId, device.device_id);
    return { id_server_unbind_result: 'no-support' };
  }
}
