import { Body, CallHandler, Controller, ExecutionContext, Get, Inject, Injectable, NestInterceptor, Param, Put, UseGuards } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';
import type { AccountStore, ModerationFlag } from '@atrium/accounts';
import type { AtriumConfig } from '@atrium/config';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type Requester } from '@atrium/http';
import { isValidUserId } from '@atrium/matrix';
import { ACCOUNT_STORE, CONFIG } from '@atrium/platform';
import { ROOM_STORE, type RoomStore } from '@atrium/rooms';

/**
 * Account moderation for server administrators (admin.yaml, v1.18; client-server-api
 * "Account locking" and "Account suspension"): GET/PUT /v1/admin/lock/{userId} and
 * /v1/admin/suspend/{userId}. The flags live on the user and its access tokens
 * (AccountStore.setModeration); AccessTokenGuard answers 401 M_USER_LOCKED for a
 * locked account on everything but logout, SuspensionInterceptor 403
 * M_USER_SUSPENDED for the actions a suspended account may not take.
 */
@Controller('_matrix/client/v1')
@UseGuards(AccessTokenGuard)
export class AccountModerationController {
  constructor(
    @Inject(ACCOUNT_STORE) private readonly accounts: AccountStore,
    @Inject(CONFIG) private readonly config: AtriumConfig,
  ) {}

  @Get('admin/lock/:userId')
  async getLock(@CurrentRequester() requester: Requester, @Param('userId') userId: string): Promise<{ locked: boolean }> {
    return { locked: (await this.target(requester, userId, false)).locked === true };
  }

  @Put('admin/lock/:userId')
  async setLock(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown): Promise<{ locked: boolean }> {
    return { locked: await this.set(requester, userId, 'locked', body) };
  }

  @Get('admin/suspend/:userId')
  async getSuspend(@CurrentRequester() requester: Requester, @Param('userId') userId: string): Promise<{ suspended: boolean }> {
    return { suspended: (await this.target(requester, userId, false)).suspended === true };
  }

  @Put('admin/suspend/:userId')
  async setSuspend(@CurrentRequester() requester: Requester, @Param('userId') userId: string, @Body() body: unknown): Promise<{ suspended: boolean }> {
    return { suspended: await this.set(requester, userId, 'suspended', body) };
  }

  private async set(requester: Requester, userId: string, flag: ModerationFlag, rawBody: unknown): Promise<boolean> {
    await this.target(requester, userId, true);
    const body = requireJsonObject(rawBody);
    const value = body[flag];
    if (value === undefined) throw Errors.missingParam(flag);
    if (typeof value !== 'boolean') throw Errors.badJson(`"${flag}" must be a boolean`);
    await this.accounts.setModeration(userId, flag, value);
    return value;
  }

  /**
   * The checks of every operation, in the spec's order: "authorisation is
   * checked prior to trying to do account lookups" (403 M_FORBIDDEN for a
   * non-admin), then 400 M_INVALID_PARAM for a user of another server, 404
   * M_NOT_FOUND for an unknown or deactivated one; a change of one's own
   * account or another administrator's is 403 M_FORBIDDEN.
   */
  private async target(requester: Requester, userId: string, changing: boolean): Promise<{ locked?: boolean; suspended?: boolean }> {
    const admin = await this.accounts.getUser(requester.userId);
    if (!admin?.is_admin) throw Errors.forbidden('Requesting user is not a server administrator.');
    if (!isValidUserId(userId, 'historical') || userId.slice(userId.indexOf(':') + 1) !== this.config.server_name) {
      throw Errors.invalidParam('User does not belong to the local server.');
    }
    const user = await this.accounts.getUser(userId);
    if (!user || user.deactivated) throw Errors.notFound('User not found.');
    if (changing && userId === requester.userId) throw Errors.forbidden('Administrators cannot moderate their own account.');
    if (changing && user.is_admin) throw Errors.forbidden('The target user is another administrator.');
    return user;
  }
}

type RequestWithRequester = FastifyRequest & { requester?: Requester };

/**
 * "Account suspension": the spec's recommended forbidden actions answer 403
 * M_USER_SUSPENDED — joining or knocking, sending or accepting invites
 * (joining by invite is a join), sending messages (any event through /send
 * but redactions, state events, creating or upgrading rooms, and membership
 * changes of others: kick, ban, unban), changing profile data, and redacting
 * other users' events. Everything else stays open: /sync, /messages, leaving
 * and rejecting invites, redacting one's own events, devices, keys, logout,
 * deactivation. Runs after the guards (the requester is known) and only
 * looks at requests of suspended accounts.
 */
@Injectable()
export class SuspensionInterceptor implements NestInterceptor {
  constructor(@Inject(ROOM_STORE) private readonly rooms: RoomStore) {}

  async intercept(context: ExecutionContext, next: CallHandler): Promise<Observable<unknown>> {
    const request = context.switchToHttp().getRequest<RequestWithRequester>();
    const requester = request.requester;
    if (requester?.suspended && (await this.forbidden(request, requester))) throw Errors.userSuspended();
    return next.handle();
  }

  private async forbidden(request: FastifyRequest, requester: Requester): Promise<boolean> {
    const route = request.routeOptions.url ?? '';
    const match = /^\/_matrix\/client\/(?:v3|r0|v1)\/(.*)$/.exec(route);
    if (!match) return false;
    const path = match[1];
    const params = (request.params ?? {}) as Record<string, string>;
    switch (`${request.method} ${path}`) {
      case 'POST createRoom':
      case 'POST join/:roomIdOrAlias':
      case 'POST knock/:roomIdOrAlias':
      case 'POST rooms/:roomId/join':
      case 'POST rooms/:roomId/invite':
      case 'POST rooms/:roomId/kick':
      case 'POST rooms/:roomId/ban':
      case 'POST rooms/:roomId/unban':
      case 'POST rooms/:roomId/upgrade':
      case 'PUT rooms/:roomId/state/:eventType':
      case 'PUT rooms/:roomId/state/:eventType/*':
      case 'PUT profile/:userId/:keyName':
      case 'DELETE profile/:userId/:keyName':
        return true;
      case 'PUT rooms/:roomId/send/:eventType/:txnId':
        // "a user may be allowed to send m.room.redaction events but not m.room.message events through /send".
        return params['eventType'] !== 'm.room.redaction';
      case 'PUT rooms/:roomId/redact/:eventId/:txnId': {
        const event = await this.rooms.getEvent(params['eventId'] ?? '');
        return event !== null && event.sender !== requester.userId;
      }
      default:
        return false;
    }
  }
}
