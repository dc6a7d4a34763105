/**
 * Inbound request authentication. Spec: server-server-api "Request
 * Authentication" (X-Matrix), and the 401 for a `destination` that is not us.
 * docs/federation-design.md "Transport rules": a missing or bad header, a
 * destination that is not us, or an origin whose key cannot be had: 401
 * M_UNAUTHORIZED.
 */
import { Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { AtriumConfig } from '@atrium/config';
import { KEY_RING, remoteKeyId, type KeyRing } from '@atrium/federation-client';
import { MatrixError } from '@atrium/http';
import { parseServerName, parseXMatrix, verifyParsedRequest, type JsonValue } from '@atrium/matrix';
import { CONFIG } from '@atrium/platform';

/** What the guard leaves on the request for controllers (read with `@FederationOrigin()` of ../origin.ts). */
export interface FederationAuthenticated {
  /** The authenticated origin server name. */
  federationOrigin?: string;
}

interface GuardedRequest extends FederationAuthenticated {
  method: string;
  /** Path and query exactly as received (Fastify's raw URL). */
  url: string;
  headers: Record<string, string | string[] | undefined>;
  body?: unknown;
}

const FEDERATION_PREFIX = '/_matrix/federation/';

/**
 * Routes under /_matrix/federation that are not signed by a server:
 * `/version` (version.yaml has no security) and `/openid/userinfo`, which
 * takes a user's OpenID token instead (openid.yaml).
 */
const UNSIGNED_PATHS = new Set(['/_matrix/federation/v1/version', '/_matrix/federation/v1/openid/userinfo']);

function unauthorized(message: string): MatrixError {
  return new MatrixError(401, 'M_UNAUTHORIZED', message);
}

/**
 * Checks X-Matrix on every `/_matrix/federation/**` route but the unsigned
 * ones, and sets `federationOrigin` on the request. Registered app-wide by
 * FederationInboundModule (so a federation route added anywhere is covered);
 * other modules served without it (media federation in its own process) put
 * `@UseGuards(XMatrixGuard)` on their controllers. Checking twice is
 * harmless: a request already authenticated passes.
 */
@Injectable()
export class XMatrixGuard implements CanActivate {
  constructor(
    @Inject(CONFIG) private readonly config: AtriumConfig,
    @Inject(KEY_RING) private readonly keyRing: KeyRing,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    if (context.getType() !== 'http') return true;
    const request = context.switchToHttp().getRequest<GuardedRequest>();
    const path = request.url.split('?', 1)[0];
    if (!path.startsWith(FEDERATION_PREFIX) || UNSIGNED_PATHS.has(path)) return true;
    if (request.federationOrigin !== undefined) return true;
    request.federationOrigin = await this.authenticate(request);
    return true;
  }

  /** The origin of a correctly signed request; throws 401 M_UNAUTHORIZED otherwise. */
  async authenticate(request: GuardedRequest): Promise<string> {
    const header = request.headers['authorization'];
    if (typeof header !== 'string') throw unauthorized('Missing X-Matrix Authorization header');
    const parsed = parseXMatrix(header);
    if (!parsed.ok) throw unauthorized(`Bad X-Matrix Authorization header: ${parsed.error}`);
    const { auth } = parsed;
    const ourName = this.config.server_name;
    // Checked before any key fetch, so a request meant for another server costs nothing.
    if (auth.destination !== undefined && auth.destination !== ourName) throw unauthorized(`Request is for ${auth.destination}, not ${ourName}`);
    if (!parseServerName(auth.origin)) throw unauthorized('Origin is not a server name');
    const now = Date.now();
    const keys = await this.keyRing.getVerifyKeys([{ serverName: auth.origin, keyIds: [auth.key], atTs: now }]);
    const known = keys.get(remoteKeyId(auth.origin, auth.key));
    const content = request.body === undefined || request.body === null || request.body === '' ? undefined : (request.body as JsonValue);
    const result = verifyParsedRequest(auth, { method: request.method, uri: request.url, content }, ourName, () => known, now);
    if (!result.ok) throw unauthorized(result.reason === 'unknown-key' ? `Cannot get key ${auth.key} of ${auth.origin}` : `X-Matrix: ${result.detail}`);
    return result.origin;
  }
}
