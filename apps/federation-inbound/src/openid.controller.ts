import { Controller, Get, Inject, Query } from '@nestjs/common';
import { OpenIdTokenStore } from '@atrium/accounts';
import { MatrixError } from '@atrium/http';

export const FEDERATION_OPENID_TOKEN_STORE = Symbol('atrium:federation-openid-token-store');

/**
 * GET /_matrix/federation/v1/openid/userinfo (server-server openid.yaml):
 * exchanges an OpenID token from POST /user/{userId}/openid/request_token
 * for its owner. Not signed by a server (X-Matrix): the caller may be any
 * service a user handed the token to. An unknown or expired token is 401
 * M_UNKNOWN_TOKEN ("The token was not recognized or has expired"); a
 * missing one (the parameter is required) 401 M_MISSING_TOKEN.
 */
@Controller('_matrix/federation/v1')
export class OpenIdUserInfoController {
  constructor(@Inject(FEDERATION_OPENID_TOKEN_STORE) private readonly tokens: OpenIdTokenStore) {}

  @Get('openid/userinfo')
  async userInfo(@Query('access_token') token: unknown): Promise<{ sub: string }> {
    if (typeof token !== 'string' || token === '') throw new MatrixError(401, 'M_MISSING_TOKEN', 'Missing access_token');
    const userId = await this.tokens.userOf(token);
    if (!userId) throw new MatrixError(401, 'M_UNKNOWN_TOKEN', 'Access token unknown or expired');
    return { sub: userId };
  }
}
