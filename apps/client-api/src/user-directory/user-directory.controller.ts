import { Body, Controller, HttpCode, Inject, Post, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, requireJsonObject, type RateLimit, type RateLimiter, type Requester } from '@atrium/http';
import { RATE_LIMITER } from '@atrium/platform';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { UserDirectoryService, type DirectoryUser } from './user-directory.service';

/** users.yaml `limit`: "Defaults to 10." */
const DEFAULT_LIMIT = 10;
/** The most results one request gets; a larger limit is clamped (the answer is then `limited` if more matched). */
const MAX_LIMIT = 100;
/**
 * users.yaml lists 429 for this endpoint: a search reads up to a few thousand
 * index records, so each user gets 2 per second with bursts of 20 (typing in
 * a search box sends one per keystroke). Off with `rate_limits.enabled: false`.
 */
const SEARCH_RATE: RateLimit = { per_second: 2, burst: 20 };

/**
 * POST /_matrix/client/v3/user_directory/search (data/api/client-server/users.yaml).
 * `search_term` is required (M_MISSING_PARAM when absent, M_BAD_JSON when not
 * a string); `limit` must be an integer (M_BAD_JSON) and not negative
 * (M_INVALID_PARAM).
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class UserDirectoryController {
  constructor(
    private readonly directory: UserDirectoryService,
    @Inject(RATE_LIMITER) private readonly rateLimiter: RateLimiter,
  ) {}

  @Post('user_directory/search')
  @HttpCode(200)
  async search(@CurrentRequester() requester: Requester, @Body() rawBody: unknown): Promise<{ results: DirectoryUser[]; limited: boolean }> {
    await this.rateLimiter.check('user_directory', requester.userId, SEARCH_RATE);
    const body = requireJsonObject(rawBody);
    const term = body['search_term'];
    if (term === undefined) throw Errors.missingParam('search_term');
    if (typeof term !== 'string') throw Errors.badJson('"search_term" must be a string');
    const rawLimit = body['limit'];
    let limit = DEFAULT_LIMIT;
    if (rawLimit !== undefined) {
      if (typeof rawLimit !== 'number' || !Number.isInteger(rawLimit)) throw Errors.badJson('"limit" must be an integer');
      if (rawLimit < 0) throw Errors.invalidParam('"limit" must not be negative');
      limit = Math.min(rawLimit, MAX_LIMIT);
    }
    return this.directory.search(requester.userId, term, limit);
  }
}
