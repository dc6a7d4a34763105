import { Controller, Get, Query, Res, UseGuards } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { AccessTokenGuard, AllowGuests, CurrentRequester, Errors, type Requester } from '@atrium/http';
import type { Filter } from '@atrium/matrix';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { filterError, parseFilterOrThrow, parseJsonParam } from './filter-errors';
import { FilterStore } from './filter-store';
import { requireSyncToken } from './sync-token';
import { SyncService, type StateAfterKey } from './sync.service';

const PRESENCE = new Set(['online', 'offline', 'unavailable']);

/** A boolean query parameter: `true` or `false` (sync.yaml full_state), else M_INVALID_PARAM. */
export function booleanParam(name: string, value: string | undefined, fallback: boolean): boolean {
  if (value === undefined || value === '') return fallback;
  if (value === 'true') return true;
  if (value === 'false') return false;
  throw Errors.invalidParam(`${name} must be true or false`);
}

/** A non-negative integer query parameter, else M_INVALID_PARAM. */
export function integerParam(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  if (!/^\d{1,15}$/.test(value)) throw Errors.invalidParam(`${name} must be a non-negative integer`);
  return Number(value);
}

/**
 * sync.yaml `use_state_after` (v1.16), or its MSC4222 name that matrix-js-sdk
 * sends: the response key then follows the parameter's name, as the SDK reads
 * `org.matrix.msc4222.state_after`. The stable parameter wins when both are given.
 */
function stateAfterKey(stable: string | undefined, unstable: string | undefined): StateAfterKey | undefined {
  if (stable !== undefined && stable !== '') return booleanParam('use_state_after', stable, false) ? 'state_after' : undefined;
  return booleanParam('org.matrix.msc4222.use_state_after', unstable, false) ? 'org.matrix.msc4222.state_after' : undefined;
}

/** Spec: data/api/client-server/sync.yaml (GET /sync), client-server-api "Syncing" and "Filtering". */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class SyncController {
  constructor(
    private readonly sync: SyncService,
    private readonly filters: FilterStore,
  ) {}

  @Get('sync')
  @AllowGuests()
  async get(
    @CurrentRequester() requester: Requester,
    @Query('filter') filterParam: string | undefined,
    @Query('since') since: string | undefined,
    @Query('full_state') fullState: string | undefined,
    @Query('set_presence') setPresence: string | undefined,
    @Query('timeout') timeout: string | undefined,
    @Query('use_state_after') useStateAfter: string | undefined,
    @Query('org.matrix.msc4222.use_state_after') useStateAfterUnstable: string | undefined,
    @Res({ passthrough: true }) reply: FastifyReply,
  ): Promise<unknown> {
    if (setPresence !== undefined && !PRESENCE.has(setPresence)) throw Errors.invalidParam('set_presence must be online, offline or unavailable');
    const params = {
      since: since === undefined || since === '' ? undefined : requireSyncToken('since', since),
      fullState: booleanParam('full_state', fullState, false),
      timeoutMs: integerParam('timeout', timeout, 0),
      filter: await this.filter(requester, filterParam),
      setPresence: setPresence as 'online' | 'offline' | 'unavailable' | undefined,
      stateAfterKey: stateAfterKey(useStateAfter, useStateAfterUnstable),
    };
    // A long-poll stops waiting when the client goes away.
    const abort = new AbortController();
    const onClose = (): void => {
      if (!reply.raw.writableEnded) abort.abort();
    };
    reply.raw.once('close', onClose);
    try {
      return await this.sync.sync(requester, params, abort.signal);
    } finally {
      reply.raw.off('close', onClose);
    }
  }

  /**
   * sync.yaml `filter`: "The server will detect whether it is an ID or a JSON
   * object by whether the first character is a "{" open brace." An unknown
   * ID is 400 M_INVALID_PARAM (the parameter is wrong, not a resource missing).
   */
  private async filter(requester: Requester, param: string | undefined): Promise<Filter> {
    if (param === undefined || param === '') return {};
    if (param.startsWith('{')) return parseFilterOrThrow(parseJsonParam('filter', param));
    try {
      const stored = await this.filters.get(requester.userId, param);
      if (!stored) throw Errors.invalidParam('No such filter');
      return stored;
    } catch (err) {
      throw filterError(err);
    }
  }
}
