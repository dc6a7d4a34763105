import { Body, Controller, Get, HttpCode, Inject, Param, Post, Put, Query, UseGuards } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { AccessTokenGuard, Errors, MatrixError, requireJsonObject } from '@atrium/http';
import { CONFIG } from '@atrium/platform';
import { CLIENT_PREFIXES } from '../auth/auth.controller';

/**
 * Operations of features this server does not offer, answering what the spec
 * says a server without them answers, so clients learn it in the documented
 * way instead of from a bare 404 of an unknown route.
 */

/**
 * Third-party networks (third_party_lookup.yaml, module
 * third_party_networks.md). Protocols come from registered application
 * services (bridges); none can be registered here, so there are no protocols,
 * no portal rooms and no third-party users.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class ThirdPartyController {
  /** "Dictionary of supported third-party protocols": empty. */
  @Get('thirdparty/protocols')
  protocols(): Record<string, never> {
    return {};
  }

  /** 404 "The protocol is unknown": every protocol is. */
  @Get('thirdparty/protocol/:protocol')
  protocol(@Param('protocol') protocol: string): never {
    throw Errors.notFound(`Unknown protocol ${protocol}`);
  }

  /** 404 "No portal rooms were found". */
  @Get('thirdparty/location/:protocol')
  locationByProtocol(@Param('protocol') protocol: string): never {
    throw Errors.notFound(`No portal rooms were found for protocol ${protocol}`);
  }

  /** 404 "The Matrix User ID was not found" (no protocol has users). */
  @Get('thirdparty/user/:protocol')
  userByProtocol(@Param('protocol') protocol: string): never {
    throw Errors.notFound(`No third-party users were found for protocol ${protocol}`);
  }

  /** "All found third-party locations" for a room alias (`alias` required): none without bridges. */
  @Get('thirdparty/location')
  locationByAlias(@Query('alias') alias: unknown): never[] {
    if (typeof alias !== 'string' || alias === '') throw Errors.missingParam('alias');
    return [];
  }

  /** "An array of third-party users" for a Matrix user ID (`userid` required): none without bridges. */
  @Get('thirdparty/user')
  userById(@Query('userid') userId: unknown): never[] {
    if (typeof userId !== 'string' || userId === '') throw Errors.missingParam('userid');
    return [];
  }
}

/**
 * Application service endpoints for clients (appservice_ping.yaml,
 * appservice_room_directory.yaml). Both "require the use of an application
 * service access token (`as_token`)" and "cannot be invoked by users who are
 * not identified as application services". No application service can be
 * registered here, so every valid token is a user's: missing or unknown
 * tokens get the usual 401 (AccessTokenGuard), a user's token 403
 * M_FORBIDDEN (appservice_ping.yaml: "The access token used to authenticate
 * the request doesn't belong to an appservice ... The errcode is
 * `M_FORBIDDEN`").
 */
@Controller()
@UseGuards(AccessTokenGuard)
export class AppserviceController {
  @Post('_matrix/client/v1/appservice/:appserviceId/ping')
  @HttpCode(200)
  ping(@Param('appserviceId') appserviceId: string): never {
    throw Errors.forbidden(`The access token does not belong to the application service ${appserviceId}`);
  }

  @Put(CLIENT_PREFIXES.map((prefix) => `${prefix}/directory/list/appservice/:networkId/:roomId`))
  updateDirectory(): never {
    throw Errors.forbidden('Only application services may update their room directory, and the access token is not an application service token');
  }
}

/**
 * Login extras this server does not offer. GET /login advertises only
 * `m.login.password`: no `m.login.sso`, no `m.login.token` with
 * `get_login_token`, and /capabilities says `m.get_login_token` is disabled.
 */
@Controller()
export class LoginExtrasController {
  /**
   * GET /login/sso/redirect (sso_login_redirect.yaml). There is no SSO
   * interface to redirect to; an endpoint the server does not serve is 404
   * M_UNRECOGNIZED ("Common error codes"). `redirectUrl` is required, so its
   * absence is 400 M_MISSING_PARAM first.
   */
  @Get(CLIENT_PREFIXES.map((prefix) => `${prefix}/login/sso/redirect`))
  ssoRedirect(@Query('redirectUrl') redirectUrl: unknown): never {
    if (typeof redirectUrl !== 'string' || redirectUrl === '') throw Errors.missingParam('redirectUrl');
    throw Errors.unrecognized('This server does not support SSO login (GET /login lists no m.login.sso flow)');
  }

  /** GET /login/sso/redirect/{idpId}: 404 "The IdP ID was not recognized by the server": there are none. */
  @Get(CLIENT_PREFIXES.map((prefix) => `${prefix}/login/sso/redirect/:idpId`))
  idpRedirect(@Param('idpId') idpId: string, @Query('redirectUrl') redirectUrl: unknown): never {
    if (typeof redirectUrl !== 'string' || redirectUrl === '') throw Errors.missingParam('redirectUrl');
    throw Errors.notFound(`Unknown identity provider ${idpId}`);
  }

  /**
   * POST /login/get_token (login_token.yaml, v1.7): 400 when "the user does
   * not have an ability to generate tokens for their devices" (the
   * `m.get_login_token` capability is `enabled: false` for everyone here).
   * The spec names no errcode; M_FORBIDDEN says what it is. The body is
   * required (a JSON object), checked first as for any request.
   */
  @Post('_matrix/client/v1/login/get_token')
  @UseGuards(AccessTokenGuard)
  @HttpCode(200)
  getLoginToken(@Body() rawBody: unknown): never {
    requireJsonObject(rawBody);
    throw new MatrixError(400, 'M_FORBIDDEN', 'Generating login tokens is disabled on this server (see the m.get_login_token capability)');
  }

  /**
   * GET /auth_metadata (oauth_server_metadata.yaml, v1.15): 404
   * M_UNRECOGNIZED "The server does not support the OAuth 2.0 API"; clients
   * then use the legacy authentication API.
   */
  @Get('_matrix/client/v1/auth_metadata')
  authMetadata(): never {
    throw Errors.unrecognized('This server does not support the OAuth 2.0 API');
  }
}

/**
 * Well-known URIs served on the server name next to /.well-known/matrix/client.
 * policy_server.yaml: 404 "No policy server information available" (this
 * server is no policy server).
 */
@Controller()
export class WellKnownExtrasController {
  constructor(@Inject(CONFIG) private readonly config: AtriumConfig) {}

  /**
   * support.yaml: the `support` config section. Contacts need a `role` and a
   * `matrix_id` or an `email_address` (others are left out); "At least one of
   * contacts or support_page is required", else 404 "No server support
   * information available".
   */
  @Get('.well-known/matrix/support')
  support(): { contacts?: Array<{ role: string; matrix_id?: string; email_address?: string }>; support_page?: string } {
    const contacts = this.config.support.contacts.filter(
      (c) => typeof c.role === 'string' && c.role !== '' && (typeof c.matrix_id === 'string' || typeof c.email_address === 'string'),
    );
    const out: { contacts?: typeof contacts; support_page?: string } = {};
    if (contacts.length > 0) out.contacts = contacts;
    if (this.config.support.support_page !== '') out.support_page = this.config.support.support_page;
    if (Object.keys(out).length === 0) throw Errors.notFound('No server support information available');
    return out;
  }

  @Get('.well-known/matrix/policy_server')
  policyServer(): never {
    throw Errors.notFound('No policy server information available');
  }
}
