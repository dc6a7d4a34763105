import { Inject, Injectable, Optional } from '@nestjs/common';
import { FEDERATION_CLIENT, FederationHttpError, FederationUnreachableError, type FederationClient } from '@atrium/federation-client';
import { Errors, MatrixError } from '@atrium/http';
import { domainOfId, type JsonObject } from '@atrium/matrix';
import type { ProfileFields } from '@atrium/user-data';

/**
 * Profiles of other servers' users, for GET /profile/{userId}[/{keyName}]:
 * "homeservers SHOULD query the remote server" (client-server-api
 * "Profiles"), by server-server-api GET /query/profile, which the user's own
 * server answers ("Homeservers MUST only query profiles for users that
 * belong to the target server").
 */
@Injectable()
export class RemoteProfiles {
  constructor(@Optional() @Inject(FEDERATION_CLIENT) private readonly federation?: FederationClient) {}

  /**
   * The profile (or one field) as the user's server gives it. Its 404 and
   * 403 pass through as the client API's (profile.yaml lists both); a server
   * that cannot be reached counts as not found.
   */
  async get(userId: string, field?: string): Promise<ProfileFields> {
    const server = domainOfId(userId);
    if (!server || !this.federation) throw Errors.notFound('Profile not found');
    let answer: JsonObject;
    try {
      answer = await this.federation.request<JsonObject>({
        destination: server,
        method: 'GET',
        path: '/_matrix/federation/v1/query/profile',
        query: field === undefined ? { user_id: userId } : { user_id: userId, field },
        timeoutMs: 10_000,
        maxResponseBytes: 256 * 1024,
      });
    } catch (err) {
      if (err instanceof FederationHttpError && err.status === 403) throw Errors.forbidden(`${server} does not disclose this profile`);
      if (err instanceof FederationHttpError && err.status < 500) throw Errors.notFound('Profile not found');
      if (err instanceof FederationUnreachableError || err instanceof FederationHttpError) throw Errors.notFound(`Profile not found: ${server} could not be reached`);
      throw err;
    }
    if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) throw new MatrixError(502, 'M_UNKNOWN', `${server} answered the profile query with something that is not an object`);
    // "MUST either exclude it from the response body or give it the value null": null is no value.
    const fields: ProfileFields = {};
    for (const [key, value] of Object.entries(answer)) if (value !== null) fields[key] = value;
    if (field !== undefined) {
      if (!Object.prototype.hasOwnProperty.call(fields, field)) throw Errors.notFound('Profile field not found');
      return { [field]: fields[field] };
    }
    return fields;
  }
}
