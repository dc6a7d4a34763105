import { Body, Controller, Get, HttpCode, Inject, Post, Query, Req, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { AccountStore } from '@atrium/accounts';
import type { Bus } from '@atrium/bus';
import { publishDeviceDeleted } from '@atrium/e2ee';
import { AccessTokenGuard, AllowGuests, AllowLocked, CurrentRequester, Errors, optionalJsonObject, requireJsonObject, requireString, type Requester } from '@atrium/http';
import { ACCOUNT_STORE, BUS } from '@atrium/platform';
import { AuthService, type LoginResponse, type RegisterResponse } from './auth.service';

/** Paths that existed in r0 stay reachable there for older clients (the spec kept them). */
export const CLIENT_PREFIXES = ['_matrix/client/v3', '_matrix/client/r0'];

/** Spec: data/api/client-server/login.yaml, registration.yaml, logout.yaml, refresh.yaml. */
@Controller(CLIENT_PREFIXES)
export class AuthController {
  constructor(
    private readonly auth: AuthService,
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(BUS) private readonly bus: Bus,
  ) {}

  @Get('login')
  loginFlows(): { flows: Array<{ type: string }> } {
    return this.auth.loginFlows();
  }

  @Post('login')
  @HttpCode(200)
  login(@Body() body: unknown, @Req() request: FastifyRequest): Promise<LoginResponse> {
    return this.auth.login(requireJsonObject(body), request.ip);
  }

  @Post('register')
  @HttpCode(200)
  register(@Body() body: unknown, @Query('kind') kind: string | undefined, @Req() request: FastifyRequest): Promise<RegisterResponse> {
    return this.auth.register(requireJsonObject(body), kind ?? 'user', request.ip);
  }

  @Get('register/available')
  async available(@Query('username') username: string | undefined): Promise<{ available: true }> {
    if (username === undefined) throw Errors.missingParam('username');
    await this.auth.checkAvailable(username);
    return { available: true };
  }

  /** POST /logout: "The device associated with the access token is also deleted." */
  @Post('logout')
  @HttpCode(200)
  @UseGuards(AccessTokenGuard)
  @AllowGuests()
  @AllowLocked()
  async logout(@CurrentRequester() requester: Requester): Promise<Record<string, never>> {
    await this.accounts.logout(requester);
    // The device is gone, so are its keys, and users sharing a room see it in device_lists.changed
    // (and remote servers get m.device_list_update), as for DELETE /devices.
    await publishDeviceDeleted(this.bus, requester.userId, requester.deviceId);
    return {};
  }

  @Post('logout/all')
  @HttpCode(200)
  @UseGuards(AccessTokenGuard)
  @AllowLocked()
  async logoutAll(@CurrentRequester() requester: Requester): Promise<Record<string, never>> {
    const devices = await this.accounts.listDevices(requester.userId);
    await this.accounts.logoutAll(requester.userId);
    for (const device of devices) await publishDeviceDeleted(this.bus, requester.userId, device.device_id);
    return {};
  }
}

/** Endpoints added after r0: refresh tokens (v1.3) and registration-token validity (v1.2, under /v1). */
@Controller()
export class AuthV3OnlyController {
  constructor(private readonly auth: AuthService) {}

  @Post('_matrix/client/v3/refresh')
  @HttpCode(200)
  refresh(@Body() body: unknown) {
    return this.auth.refresh(requireString(optionalJsonObject(body), 'refresh_token'));
  }

  /** Spec: registration_tokens.yaml. 403 M_FORBIDDEN when the server does not use tokens. */
  @Get('_matrix/client/v1/register/m.login.registration_token/validity')
  validity(@Query('token') token: string | undefined): { valid: boolean } {
    if (!this.auth.registrationTokensEnabled()) throw Errors.forbidden('Registration tokens are not used on this server');
    if (token === undefined) throw Errors.missingParam('token');
    return { valid: this.auth.isValidRegistrationToken(token) };
  }
}
