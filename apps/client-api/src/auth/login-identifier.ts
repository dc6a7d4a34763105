import { Errors, MatrixError } from '@atrium/http';

/**
 * Reads the user a login (or an m.login.password UIA stage) names: the
 * `identifier` object (client-server-api "Identifier types"), or the deprecated
 * top-level `user` field older clients still send.
 */
export function loginUser(body: Record<string, unknown>): string {
  const identifier = body.identifier;
  if (identifier !== undefined) {
    if (typeof identifier !== 'object' || identifier === null || Array.isArray(identifier)) {
      throw Errors.badJson('"identifier" must be an object');
    }
    const id = identifier as Record<string, unknown>;
    if (id.type === 'm.id.user') {
      if (typeof id.user !== 'string') throw Errors.badJson('"identifier.user" must be a string');
      return id.user;
    }
    if (id.type === 'm.id.thirdparty' || id.type === 'm.id.phone') {
      throw Errors.forbidden('Third-party identifiers are not supported on this server');
    }
    // login.yaml, 400: "the login type may not be recognised" (example errcode M_UNKNOWN).
    throw new MatrixError(400, 'M_UNKNOWN', `Unknown identifier type ${String(id.type)}`);
  }
  if (typeof body.user === 'string') return body.user;
  throw Errors.missingParam('identifier');
}
