import { createHash, randomBytes } from 'node:crypto';
import type { Collection, Doc, DocumentStore } from '@atrium/storage';

/**
 * OpenID tokens (client-server-api module "OpenID", openid.yaml): issued by
 * POST /user/{userId}/openid/request_token and exchanged by another service
 * through the federation GET /openid/userinfo. "The access token generated is
 * only valid for the OpenID API": these tokens live apart from access tokens,
 * so one can never authenticate a client request. Stored as SHA-256 digests
 * (as access tokens are), with their expiry.
 */
interface OpenIdTokenRecord extends Doc {
  _id: string; // sha256 of the token
  user_id: string;
  expires_ts: number;
}

/** Lifetime of an OpenID token: an hour, the spec's example `expires_in` (and Synapse's default). */
export const OPENID_TOKEN_LIFETIME_MS = 3600 * 1000;

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

export class OpenIdTokenStore {
  private constructor(
    private readonly tokens: Collection<OpenIdTokenRecord>,
    private readonly now: () => number,
  ) {}

  static async open(store: DocumentStore, now: () => number = Date.now): Promise<OpenIdTokenStore> {
    return new OpenIdTokenStore(await store.collection<OpenIdTokenRecord>({ name: 'openid_tokens', indexes: [{ fields: ['expires_ts'] }] }), now);
  }

  /** A new token for `userId`, valid for `lifetimeMs`. */
  async issue(userId: string, lifetimeMs = OPENID_TOKEN_LIFETIME_MS): Promise<{ token: string; expiresInMs: number }> {
    // Expired tokens are useless: dropped here (indexed), so the collection holds about an hour of tokens.
    await this.tokens.deleteMany({ expires_ts: { $lte: this.now() } });
    const token = `oid_${randomBytes(24).toString('base64url')}`;
    await this.tokens.insert({ _id: digest(token), user_id: userId, expires_ts: this.now() + lifetimeMs });
    return { token, expiresInMs: lifetimeMs };
  }

  /** The user who generated `token`, or null when it is unknown or expired. */
  async userOf(token: string): Promise<string | null> {
    const record = await this.tokens.get(digest(token));
    if (!record || record.expires_ts <= this.now()) return null;
    return record.user_id;
  }
}
