import { Body, Controller, HttpCode, Post, Query, UseGuards } from '@nestjs/common';
import { AccessTokenGuard, CurrentRequester, Errors, MatrixError, requireJsonObject, type Requester } from '@atrium/http';
import { FilterValidationError, parseRoomEventFilter, type RoomEventFilter } from '@atrium/matrix';
import { SEARCH_KEYS, searchTerms, type SearchKey } from '@atrium/relations';
import { CLIENT_PREFIXES } from '../auth/auth.controller';
import { SearchService, type RoomEventsCriteria } from './search.service';

/** search.yaml event_context before_limit/after_limit: "By default, this is 5"; capped so one result stays small. */
const DEFAULT_CONTEXT = 5;
const MAX_CONTEXT = 20;

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * POST /_matrix/client/v3/search (data/api/client-server/search.yaml;
 * client-server-api "Server Side Search"). Only the `room_events` category
 * exists; the request is validated here (400 M_BAD_JSON for wrong types,
 * M_MISSING_PARAM for a missing search_term, M_INVALID_PARAM for values out
 * of their enum) and searched by SearchService.
 */
@Controller(CLIENT_PREFIXES)
@UseGuards(AccessTokenGuard)
export class SearchController {
  constructor(private readonly search: SearchService) {}

  @Post('search')
  @HttpCode(200)
  async searchRoute(@CurrentRequester() requester: Requester, @Query('next_batch') nextBatch: string | undefined, @Body() rawBody: unknown): Promise<Json> {
    const body = requireJsonObject(rawBody);
    const categories = body['search_categories'];
    if (categories === undefined) throw Errors.missingParam('search_categories');
    if (!isObject(categories)) throw Errors.badJson('"search_categories" must be an object');
    const roomEvents = categories['room_events'];
    // Unknown categories are ignored; without room_events there is nothing to search.
    if (roomEvents === undefined) return { search_categories: {} };
    if (!isObject(roomEvents)) throw Errors.badJson('"room_events" must be an object');
    const criteria = parseCriteria(roomEvents);
    return { search_categories: { room_events: await this.search.roomEvents(requester, criteria, nextBatch === '' ? undefined : nextBatch) } };
  }
}

function parseCriteria(raw: Json): RoomEventsCriteria {
  const term = raw['search_term'];
  if (term === undefined) throw Errors.missingParam('search_term');
  if (typeof term !== 'string') throw Errors.badJson('"search_term" must be a string');
  const terms = searchTerms(term);
  if (terms.length === 0) throw Errors.invalidParam('"search_term" has no words to search for');

  let keys: Set<SearchKey> = new Set(SEARCH_KEYS);
  if (raw['keys'] !== undefined) {
    const list = raw['keys'];
    if (!Array.isArray(list) || list.some((k) => typeof k !== 'string')) throw Errors.badJson('"keys" must be an array of strings');
    const bad = (list as string[]).find((k) => !(SEARCH_KEYS as readonly string[]).includes(k));
    if (bad !== undefined) throw Errors.invalidParam(`Unknown search key ${JSON.stringify(bad)}; keys are ${SEARCH_KEYS.join(', ')}`);
    // "The keys to search. Defaults to all." An empty list is read as the default too.
    if (list.length > 0) keys = new Set(list as SearchKey[]);
  }

  let filter: RoomEventFilter | undefined;
  if (raw['filter'] !== undefined && raw['filter'] !== null) {
    try {
      filter = parseRoomEventFilter(raw['filter'], 'filter');
    } catch (err) {
      if (err instanceof FilterValidationError) throw new MatrixError(400, err.errcode, `Invalid filter: ${err.message}`);
      throw err;
    }
  }

  const orderBy = raw['order_by'] ?? 'rank';
  if (orderBy !== 'rank' && orderBy !== 'recent') throw Errors.invalidParam('"order_by" must be rank or recent');

  let context: RoomEventsCriteria['context'];
  if (raw['event_context'] !== undefined) {
    const ec = raw['event_context'];
    if (!isObject(ec)) throw Errors.badJson('"event_context" must be an object');
    const int = (key: string): number => {
      const v = ec[key];
      if (v === undefined) return DEFAULT_CONTEXT;
      if (typeof v !== 'number' || !Number.isSafeInteger(v)) throw Errors.badJson(`"event_context.${key}" must be an integer`);
      if (v < 0) throw Errors.invalidParam(`"event_context.${key}" must not be negative`);
      return Math.min(v, MAX_CONTEXT);
    };
    const profile = ec['include_profile'];
    if (profile !== undefined && typeof profile !== 'boolean') throw Errors.badJson('"event_context.include_profile" must be a boolean');
    context = { before: int('before_limit'), after: int('after_limit'), includeProfile: profile === true };
  }

  const includeState = raw['include_state'];
  if (includeState !== undefined && typeof includeState !== 'boolean') throw Errors.badJson('"include_state" must be a boolean');

  const groupBy: ('room_id' | 'sender')[] = [];
  if (raw['groupings'] !== undefined) {
    const groupings = raw['groupings'];
    if (!isObject(groupings)) throw Errors.badJson('"groupings" must be an object');
    const list = groupings['group_by'] ?? [];
    if (!Array.isArray(list)) throw Errors.badJson('"groupings.group_by" must be an array');
    for (const group of list) {
      if (!isObject(group) || typeof group['key'] !== 'string') throw Errors.badJson('each "group_by" entry must be an object with a string "key"');
      if (group['key'] !== 'room_id' && group['key'] !== 'sender') throw Errors.invalidParam(`Unknown group key ${JSON.stringify(group['key'])}; keys are room_id, sender`);
      if (!groupBy.includes(group['key'])) groupBy.push(group['key']);
    }
  }

  return { terms, keys, filter, orderBy, context, includeState: includeState === true, groupBy };
}
