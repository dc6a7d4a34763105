import { CanActivate, createParamDecorator, ExecutionContext, Inject, Injectable, SetMetadata } from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { FastifyRequest } from 'fastify';
import { Errors } from './matrix-error';

/** Who is making a client request, resolved from its access token. */
export interface Requester {
  userId: string;
  deviceId: string;
  isGuest: boolean;
  /** ID of the access token record (to log out exactly this session). */
  tokenId: string;
  /** "Account locking": set while the account is locked (AccessTokenGuard refuses all but @AllowLocked handlers). */
  locked?: boolean;
  /** "Account suspension": set while the account is suspended (client-api refuses the suspended actions). */
  suspended?: boolean;
}

/** Resolves an access token; throws M_UNKNOWN_TOKEN (with soft_logout when expired). */
export interface AccessTokenAuthenticator {
  authenticate(accessToken: string): Promise<Requester>;
}
export const ACCESS_TOKEN_AUTHENTICATOR = Symbol('ACCESS_TOKEN_AUTHENTICATOR');

const GUESTS_ALLOWED = 'atrium:guests-allowed';
/** Marks a handler guests may call (client-server-api "Guest access" lists them). */
export const AllowGuests = (): MethodDecorator & ClassDecorator => SetMetadata(GUESTS_ALLOWED, true);

const LOCKED_ALLOWED = 'atrium:locked-allowed';
/** Marks a handler a locked account may still call ("Account locking": POST /logout and /logout/all). */
export const AllowLocked = (): MethodDecorator & ClassDecorator => SetMetadata(LOCKED_ALLOWED, true);

type RequestWithRequester = FastifyRequest & { requester?: Requester };

/**
 * "Using access tokens": the token comes as `Authorization: Bearer …` or, deprecated
 * but still required, the `access_token` query parameter.
 */
export function extractAccessToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === 'string') {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (match) return match[1];
  }
  const query = request.query as Record<string, unknown> | undefined;
  const fromQuery = query?.access_token;
  return typeof fromQuery === 'string' && fromQuery.length > 0 ? fromQuery : undefined;
}

@Injectable()
export class AccessTokenGuard implements CanActivate {
  constructor(
    @Inject(ACCESS_TOKEN_AUTHENTICATOR) private readonly authenticator: AccessTokenAuthenticator,
    private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const request = context.switchToHttp().getRequest<RequestWithRequester>();
    const token = extractAccessToken(request);
    if (!token) throw Errors.missingToken();
    const requester = await this.authenticator.authenticate(token);
    if (requester.isGuest) {
      const allowed = this.reflector.getAllAndOverride<boolean>(GUESTS_ALLOWED, [context.getHandler(), context.getClass()]);
      if (!allowed) throw Errors.guestAccessForbidden();
    }
    // "When an account is locked, servers MUST return a 401 Unauthorized error response with an
    // M_USER_LOCKED error code and soft_logout set to true on all but" the logout endpoints.
    if (requester.locked && !this.reflector.getAllAndOverride<boolean>(LOCKED_ALLOWED, [context.getHandler(), context.getClass()])) {
      throw Errors.userLocked();
    }
    request.requester = requester;
    return true;
  }
}

/** The authenticated requester of a handler guarded by AccessTokenGuard. */
export const CurrentRequester = createParamDecorator((_: unknown, context: ExecutionContext): Requester => {
  const requester = context.switchToHttp().getRequest<RequestWithRequester>().requester;
  if (!requester) throw Errors.missingToken();
  return requester;
});
