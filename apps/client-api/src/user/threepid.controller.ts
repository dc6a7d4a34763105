import { Body, Controller, Get, HttpCode, Post, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, Errors, MatrixError, requireJsonObject, requireString } from '@atrium/http';
import { CLIENT_PREFIXES } from '../auth/auth.controller';

/**
 * Third-party identifiers (email, phone). Atrium keeps none, sends no email
 * or SMS and trusts no identity server, and says so in GET /capabilities
 * (`m.3pid_changes: false`). Each endpoint still answers, with the error its
 * operation in the spec gives for that case, so clients see a clear refusal
 * rather than a 404.
 *
 * Spec: administrative_contact.yaml, registration.yaml and
 * password_management.yaml (the requestToken operations), and
 * client-server-api "Adding Account Administrative Contact Information".
 */

/**
 * request_email_validation.yaml / request_msisdn_validation.yaml: the
 * request must still be well formed (client_secret, send_attempt and the
 * address) before the refusal, so a malformed one gets its 400.
 */
function checkRequestTokenBody(rawBody: unknown, medium: 'email' | 'msisdn'): void {
  const body = requireJsonObject(rawBody);
  requireString(body, 'client_secret');
  if (body.send_attempt === undefined) throw Errors.missingParam('send_attempt');
  if (typeof body.send_attempt !== 'number' || !Number.isInteger(body.send_attempt)) throw Errors.badJson('"send_attempt" must be an integer');
  if (medium === 'email') {
    requireString(body, 'email');
  } else {
    requireString(body, 'country');
    requireString(body, 'phone_number');
  }
}

/** 403 M_THREEPID_DENIED: "The homeserver does not permit the address to be bound." */
function threepidDenied(): MatrixError {
  return new MatrixError(403, 'M_THREEPID_DENIED', 'Third-party identifiers are not supported on this server');
}

/** Unauthenticated requestToken endpoints (registration and password reset), r0 and v3. */
@Controller(CLIENT_PREFIXES)
export class ThreepidTokenController {
  /**
   * registration.yaml requestToken: 403 "The homeserver does not permit the
   * address to be bound" (M_THREEPID_DENIED). No registration flow uses email
   * or phone here (GET /register flows).
   */
  @Post('register/email/requestToken')
  @HttpCode(200)
  registerEmail(@Body() body: unknown): never {
    checkRequestTokenBody(body, 'email');
    throw threepidDenied();
  }

  @Post('register/msisdn/requestToken')
  @HttpCode(200)
  registerMsisdn(@Body() body: unknown): never {
    checkRequestTokenBody(body, 'msisdn');
    throw threepidDenied();
  }

  /**
   * password_management.yaml requestToken: 403 "The homeserver does not
   * allow the third-party identifier as a contact option" (M_THREEPID_DENIED):
   * no account has one, and passwords are only changed with the old one.
   */
  @Post('account/password/email/requestToken')
  @HttpCode(200)
  passwordEmail(@Body() body: unknown): never {
    checkRequestTokenBody(body, 'email');
    throw threepidDenied();
  }

  @Post('account/password/msisdn/requestToken')
  @HttpCode(200)
  passwordMsisdn(@Body() body: unknown): never {
    checkRequestTokenBody(body, 'msisdn');
    throw threepidDenied();
  }

  /**
   * administrative_contact.yaml requestToken: 400
   * "`M_THREEPID_MEDIUM_NOT_SUPPORTED`: The homeserver does not support adding
   * email addresses" (and likewise phone numbers).
   */
  @Post('account/3pid/email/requestToken')
  @HttpCode(200)
  addEmail(@Body() body: unknown): never {
    checkRequestTokenBody(body, 'email');
    throw new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', 'This server does not support adding email addresses');
  }

  @Post('account/3pid/msisdn/requestToken')
  @HttpCode(200)
  addMsisdn(@Body() body: unknown): never {
    checkRequestTokenBody(body, 'msisdn');
    throw new MatrixError(400, 'M_THREEPID_MEDIUM_NOT_SUPPORTED', 'This server does not support adding phone numbers');
  }
}

/** The authenticated /account/3pid endpoints. */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class ThreepidController {
  /** "Gets a list of the third-party identifiers that the homeserver has associated with the user's account": none. */
  @Get('account/3pid')
  list(): { threepids: never[] } {
    return { threepids: [] };
  }

  /**
   * POST /account/3pid (deprecated): its one error is 403
   * M_THREEPID_AUTH_FAILED, "The credentials could not be verified with the
   * identity server": no identity server is trusted, so none can be.
   */
  @Post('account/3pid')
  @HttpCode(200)
  add(@Body() rawBody: unknown): never {
    const body = requireJsonObject(rawBody);
    if (body.three_pid_creds === undefined) throw Errors.missingParam('three_pid_creds');
    throw new MatrixError(403, 'M_THREEPID_AUTH_FAILED', 'Third-party identifiers cannot be verified on this server');
  }

  /**
   * POST /account/3pid/add and /delete change the account's 3PIDs, which
   * `m.3pid_changes: false` tells clients they may not do: 403 M_FORBIDDEN
   * ("Forbidden access"). There is no validation session (`sid`) a client
   * could have obtained, and no 3PID to delete.
   */
  @Post('account/3pid/add')
  @HttpCode(200)
  addWithSession(@Body() rawBody: unknown): never {
    const body = requireJsonObject(rawBody);
    requireString(body, 'client_secret');
    requireString(body, 'sid');
    throw Errors.forbidden('Third-party identifier changes are disabled on this server');
  }

  @Post('account/3pid/delete')
  @HttpCode(200)
  remove(@Body() rawBody: unknown): never {
    const body = requireJsonObject(rawBody);
    requireString(body, 'medium');
    requireString(body, 'address');
    throw Errors.forbidden('Third-party identifier changes are disabled on this server');
  }

  /**
   * POST /account/3pid/bind goes through the identity server named in
   * `id_server`: "M_SERVER_NOT_TRUSTED: The client's request used a
   * third-party server, e.g. identity server, that this server does not
   * trust" (400, the status the requestToken operations give it).
   */
  @Post('account/3pid/bind')
  @HttpCode(200)
  bind(@Body() rawBody: unknown): never {
    const body = requireJsonObject(rawBody);
    for (const key of ['client_secret', 'id_server', 'id_access_token', 'sid']) requireString(body, key);
    throw new MatrixError(400, 'M_SERVER_NOT_TRUSTED', 'This server does not use identity servers');
  }

  /**
   * POST /account/3pid/unbind: "If the homeserver does not know the original
   * `id_server`, it MUST return a `id_server_unbind_result` of `no-support`",
   * and Atrium never binds through one.
   */
  @Post('account/3pid/unbind')
  @HttpCode(200)
  unbind(@Body() rawBody: unknown): { id_server_unbind_result: 'no-support' } {
    const body = requireJsonObject(rawBody);
    requireString(body, 'medium');
    requireString(body, 'address');
    return { id_server_unbind_result: 'no-support' };
  }
}
